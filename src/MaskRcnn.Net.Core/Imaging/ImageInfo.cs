namespace MaskRcnn.Net.Core.Imaging;

/// <summary>What an image header says: format and the size of the tensor a decode would produce.</summary>
/// <param name="Format">The container format.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="Channels">Number of channels the decode produces in the requested <see cref="ImageReadMode"/>.</param>
public readonly record struct ImageInfo(ImageFormat Format, long Height, long Width, int Channels);
