namespace MaskRcnn.Net.Training.Evaluation;

/// <summary>What the overlap between a detection and a ground-truth object is measured on (pycocotools' <c>iouType</c>).</summary>
public enum CocoIouType
{
    /// <summary>Box IoU (<c>"bbox"</c>): the detections' and ground truths' <see cref="CocoBox"/>es are compared.</summary>
    BoundingBox,

    /// <summary>Mask IoU (<c>"segm"</c>): the run-length encoded masks are compared; every object needs a mask.</summary>
    Segmentation,
}
