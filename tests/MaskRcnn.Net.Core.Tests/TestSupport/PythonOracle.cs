using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace MaskRcnn.Net.Core.Tests.TestSupport;

/// <summary>
/// Runs Debian's python3 with torch/torchvision as the reference oracle. Parity tests never skip: when the oracle
/// is missing they fail with the command that installs it.
/// </summary>
public static class PythonOracle
{
    /// <summary>The interpreter that has Debian's python3-torch (not a pyenv/venv python).</summary>
    public const string Python = "/usr/bin/python3";

    public const string InstallHint =
        "The parity oracle is missing. Install it with: sudo apt-get install python3-torchvision (or run scripts/setup.sh)";

    private static readonly Lazy<string?> Problem = new(() =>
    {
        if (!File.Exists(Python))
        {
            return $"{Python} not found. {InstallHint}";
        }

        var r = RunProcess(Python, ["-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"], null, TimeSpan.FromMinutes(2));
        return r.ExitCode == 0 ? null : $"python3 cannot import torch/torchvision: {r.Stderr.Trim()}. {InstallHint}";
    });

    /// <summary>Throws (failing the test) with the install command when the oracle is not usable.</summary>
    public static void Require()
    {
        if (Problem.Value is { } p)
        {
            throw new InvalidOperationException(p);
        }
    }

    /// <summary>Runs a Python script with arguments; returns stdout, fails the test on a non-zero exit.</summary>
    public static string Run(string script, params string[] args)
    {
        Require();
        var path = Path.Combine(Path.GetTempPath(), $"mr_oracle_{Guid.NewGuid():N}.py");
        File.WriteAllText(path, script);
        try
        {
            var r = RunProcess(Python, [path, .. args], null, TimeSpan.FromMinutes(10));
            if (r.ExitCode != 0)
            {
                throw new InvalidOperationException($"oracle script failed ({r.ExitCode}):\n{r.Stderr}");
            }

            return r.Stdout;
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Exchanges float tensors with a Python function body. Inputs are written as raw float64 + shape; the script
    /// sees them as float64 torch tensors in the dict <c>inp</c> and must fill the dict <c>out</c> with tensors.
    /// </summary>
    public static Dictionary<string, (double[] Data, long[] Shape)> Compute(string body, IReadOnlyDictionary<string, Tensor> inputs)
    {
        var dir = Directory.CreateTempSubdirectory("mr_oracle_").FullName;
        try
        {
            var meta = new Dictionary<string, long[]>();
            foreach (var (name, t) in inputs)
            {
                File.WriteAllBytes(Path.Combine(dir, name + ".in"), ToBytes(t.ToArray<double>()));
                meta[name] = t.Shape;
            }

            File.WriteAllText(Path.Combine(dir, "in.json"), JsonSerializer.Serialize(meta));
            var script = new StringBuilder()
                .AppendLine("import json, sys, os, numpy as np, torch")
                .AppendLine("d = sys.argv[1]")
                .AppendLine("meta = json.load(open(os.path.join(d, 'in.json')))")
                .AppendLine("inp = {k: torch.from_numpy(np.fromfile(os.path.join(d, k + '.in'), dtype=np.float64).reshape(v)) for k, v in meta.items()}")
                .AppendLine("out = {}")
                .AppendLine(body)
                .AppendLine("om = {}")
                .AppendLine("for k, v in out.items():")
                .AppendLine("    v = torch.as_tensor(v).detach().to(torch.float64).contiguous()")
                .AppendLine("    v.numpy().tofile(os.path.join(d, k + '.out'))")
                .AppendLine("    om[k] = list(v.shape)")
                .AppendLine("json.dump(om, open(os.path.join(d, 'out.json'), 'w'))")
                .ToString();
            Run(script, dir);
            var outMeta = JsonSerializer.Deserialize<Dictionary<string, long[]>>(File.ReadAllText(Path.Combine(dir, "out.json")))!;
            return outMeta.ToDictionary(kv => kv.Key,
                kv => (FromBytes(File.ReadAllBytes(Path.Combine(dir, kv.Key + ".out"))), kv.Value));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static byte[] ToBytes(double[] a)
    {
        var b = new byte[a.Length * 8];
        Buffer.BlockCopy(a, 0, b, 0, b.Length);
        return b;
    }

    private static double[] FromBytes(byte[] b)
    {
        var a = new double[b.Length / 8];
        Buffer.BlockCopy(b, 0, a, 0, b.Length);
        return a;
    }

    public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

    public static ProcessResult RunProcess(string file, IEnumerable<string> args, string? workDir, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? Environment.CurrentDirectory,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        // Keep the oracle on the same thread budget as the tests and away from any pyenv/venv python paths.
        psi.Environment.Remove("PYTHONPATH");
        psi.Environment.Remove("PYTHONHOME");
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within {timeout}");
        }

        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
