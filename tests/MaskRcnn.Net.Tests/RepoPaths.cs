namespace MaskRcnn.Net.Tests;

/// <summary>Locates files of the repository (tests run from bin/…).</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MaskRcnn.Net.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root (MaskRcnn.Net.sln) not found above " + AppContext.BaseDirectory);
    });

    public static string Get(params string[] parts) => Path.Combine([Root.Value, .. parts]);

    /// <summary>Real brain-MRI JPEGs (grayscale) shipped with the tests.</summary>
    public static string MriImage(int i) => Get("tests", "MaskRcnn.Net.Core.Tests", "Imaging", "data", new[] { "00099_154.jpg", "00240_157.jpg", "00332_147.jpg" }[i]);
}
