namespace MaskRcnn.Net.Core.Detection;

/// <summary>Height and width of an image in pixels.</summary>
/// <param name="Height">Rows.</param>
/// <param name="Width">Columns.</param>
public readonly record struct ImageSize(int Height, int Width)
{
    /// <inheritdoc />
    public override string ToString() => $"{Height}x{Width}";
}
