namespace MaskRcnn.Net.Video;

/// <summary>How file paths are passed to ffmpeg.</summary>
internal static class FfmpegPaths
{
    /// <summary>
    /// The path as ffmpeg's <c>file:</c> URL (absolute), so that a name starting with "-" or looking like another
    /// protocol ("http:", "pipe:", "concat:") is always read as a local file.
    /// </summary>
    public static string FileUrl(string path) => "file:" + Path.GetFullPath(path);
}
