using MaskRcnn.Net.Imaging;

namespace MaskRcnn.Net.Video;

/// <summary>One decoded frame.</summary>
/// <param name="Index">0-based position in the stream.</param>
/// <param name="Timestamp">Presentation time: <paramref name="Index"/> at the stream's frame rate
/// (<see cref="FrameRate.TimestampOf"/>), from the start of the stream.</param>
/// <param name="Image">The pixels as displayed (rotation applied), owned by the frame.</param>
public sealed record VideoFrame(long Index, TimeSpan Timestamp, RgbImage Image);
