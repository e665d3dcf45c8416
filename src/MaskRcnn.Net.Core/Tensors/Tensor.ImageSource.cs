using MaskRcnn.Net.Core.Imaging;

namespace MaskRcnn.Net.Core;

public sealed partial class Tensor
{
    /// <summary>A uint8 [C, H, W] image tensor as a model input (not copied, not disposed by the model).</summary>
    public static implicit operator ImageSource(Tensor image) => new TensorImageSource(image);
}
