namespace MaskRcnn.Net.SkiaSharp.Tests;

/// <summary>Files of the repository (tests run from bin/…).</summary>
internal static class TestData
{
    /// <summary>A real brain-MRI slice (JPEG) shipped with the tests.</summary>
    public static string MriSlice()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MaskRcnn.Net.sln")))
            {
                return Path.Combine(dir.FullName, "tests", "MaskRcnn.Net.Core.Tests", "Imaging", "data", "00099_154.jpg");
            }
        }

        throw new InvalidOperationException("repository root (MaskRcnn.Net.sln) not found above " + AppContext.BaseDirectory);
    }
}
