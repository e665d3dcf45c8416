namespace MaskRcnn.Net.Core;

/// <summary>Memory layouts of a tensor (libtorch's <c>at::MemoryFormat</c>).</summary>
public enum MemoryFormat
{
    /// <summary>Row-major in the order of the dimensions (NCHW for images).</summary>
    Contiguous = 0,

    /// <summary>
    /// NHWC strides for a 4-d [N, C, H, W] tensor: the channels of a pixel are adjacent. oneDNN convolutions on CPU
    /// run without layout conversions in this format.
    /// </summary>
    ChannelsLast = 1,
}
