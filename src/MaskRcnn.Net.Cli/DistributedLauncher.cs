using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using MaskRcnn.Net.Core.Distributed;

namespace MaskRcnn.Net.Cli;

/// <summary>
/// <c>maskrcnn train --nproc-per-node N</c>: a torchrun-style launcher. Starts N workers of the same command on this
/// machine with the environment torch.distributed's launchers set (<c>RANK</c>, <c>WORLD_SIZE</c>,
/// <c>LOCAL_RANK</c>, <c>MASTER_ADDR</c>, <c>MASTER_PORT</c>), the cores split between them, and waits for them.
/// On one machine the ranks meet through a file store in the output folder (nothing listens on the network); with
/// <c>--nnodes</c> &gt; 1 through rank 0's TCP store at the master address. When a worker fails, the others get a
/// grace period to stop with their own error (a lost peer is reported by each rank), then are killed; the launcher
/// exits with the failed worker's code. Ctrl+C / SIGTERM are passed on, so each worker stops after its step.
/// </summary>
internal static class DistributedLauncher
{
    /// <summary>Set to 1 in the workers' environment: they leave SIGINT to the launcher, which passes SIGTERM on.</summary>
    internal const string LaunchedVariable = "MASKRCNN_LAUNCHED";

    /// <summary>The launcher's process id in the workers' environment (see <see cref="StopWithLauncher"/>).</summary>
    internal const string LauncherPidVariable = "MASKRCNN_LAUNCHER_PID";

    /// <summary>How long the other workers get to stop by themselves after one failed.</summary>
    internal static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    /// <summary>The launcher's settings, validated.</summary>
    internal sealed record Plan(int ProcessesPerNode, int Nodes, int NodeRank, string MasterAddress, int MasterPort, TimeSpan Timeout)
    {
        public int WorldSize => ProcessesPerNode * Nodes;

        public void Validate()
        {
            if (ProcessesPerNode < 1)
            {
                throw new ArgumentException($"--nproc-per-node {ProcessesPerNode}: at least 1 process per node");
            }

            if (Nodes < 1)
            {
                throw new ArgumentException($"--nnodes {Nodes}: at least 1 node");
            }

            if (NodeRank < 0 || NodeRank >= Nodes)
            {
                throw new ArgumentException($"--node-rank {NodeRank} is not in 0 … {Nodes - 1} (--nnodes {Nodes})");
            }

            // The same checks as every worker's, before any process starts.
            new DistributedOptions(WorldSize, NodeRank * ProcessesPerNode) { MasterAddress = MasterAddress, MasterPort = MasterPort, Timeout = Timeout }.Validate();
        }
    }

    /// <summary>Runs the workers; returns the exit code (0 when every worker succeeded).</summary>
    public static int Run(Plan plan, int? threads, string outputDir, CancellationToken ct)
    {
        plan.Validate();
        if (plan.Nodes > 1 && new DistributedOptions(1, 0) { MasterAddress = plan.MasterAddress }.IsLoopback)
        {
            Console.Error.WriteLine($"maskrcnn: warning: --nnodes {plan.Nodes} with --master-addr {plan.MasterAddress}: other machines cannot reach a loopback address; give node 0's address");
        }

        Directory.CreateDirectory(outputDir);
        var perWorker = threads ?? Math.Max(1, Environment.ProcessorCount / plan.ProcessesPerNode);
        var storeFile = plan.Nodes == 1 ? Path.Combine(Path.GetFullPath(outputDir), $".maskrcnn-store-{Guid.NewGuid():N}") : null;
        var (exe, baseArgs) = SelfCommand();
        var workers = new List<(int Rank, Process Process)>();
        try
        {
            for (var local = 0; local < plan.ProcessesPerNode; local++)
            {
                var rank = plan.NodeRank * plan.ProcessesPerNode + local;
                var info = new ProcessStartInfo(exe) { UseShellExecute = false };
                foreach (var a in baseArgs)
                {
                    info.ArgumentList.Add(a);
                }

                if (threads is null)
                {
                    info.ArgumentList.Add("--threads");
                    info.ArgumentList.Add(perWorker.ToString(CultureInfo.InvariantCulture));
                }

                var env = info.Environment;
                env["WORLD_SIZE"] = plan.WorldSize.ToString(CultureInfo.InvariantCulture);
                env["RANK"] = rank.ToString(CultureInfo.InvariantCulture);
                env["LOCAL_RANK"] = local.ToString(CultureInfo.InvariantCulture);
                env["MASTER_ADDR"] = plan.MasterAddress;
                env["MASTER_PORT"] = plan.MasterPort.ToString(CultureInfo.InvariantCulture);
                env[LaunchedVariable] = "1";
                env[LauncherPidVariable] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
                env["MASKRCNN_DIST_TIMEOUT"] = ((int)Math.Ceiling(plan.Timeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                if (storeFile is not null)
                {
                    env["MASKRCNN_STORE_FILE"] = storeFile;
                }

                var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start worker rank {rank} ({exe})");
                workers.Add((rank, process));
                Console.Error.WriteLine($"maskrcnn: started rank {rank} of {plan.WorldSize} (pid {process.Id}, {perWorker} thread(s))");
            }

            return Supervise(workers, ct);
        }
        finally
        {
            foreach (var (_, p) in workers)
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit();
                }

                p.Dispose();
            }

            if (storeFile is not null)
            {
                File.Delete(storeFile);
            }
        }
    }

    private static int Supervise(List<(int Rank, Process Process)> workers, CancellationToken ct)
    {
        (int Rank, int Code)? failed = null;
        var forwarded = false;
        var graceLeft = Grace;
        var tick = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            var running = workers.Where(w => !w.Process.HasExited).ToList();
            foreach (var (rank, p) in workers.Where(w => w.Process.HasExited))
            {
                if (failed is null && p.ExitCode != 0)
                {
                    failed = (rank, p.ExitCode);
                    Console.Error.WriteLine($"maskrcnn: rank {rank} (pid {p.Id}) exited with code {p.ExitCode}" +
                        (running.Count > 0 ? $"; the other ranks get {Grace.TotalSeconds:0} s to stop" : ""));
                }
            }

            if (running.Count == 0)
            {
                return failed?.Code ?? (forwarded ? 130 : 0);
            }

            if (ct.IsCancellationRequested && !forwarded)
            {
                forwarded = true;
                foreach (var (_, p) in running)
                {
                    _ = Terminate(p.Id, 15); // SIGTERM: each worker checkpoints and stops after its step
                }
            }

            if (failed is not null)
            {
                graceLeft -= tick;
                if (graceLeft <= TimeSpan.Zero)
                {
                    foreach (var (rank, p) in running)
                    {
                        Console.Error.WriteLine($"maskrcnn: killing rank {rank} (pid {p.Id}), still running {Grace.TotalSeconds:0} s after rank {failed.Value.Rank} failed");
                        p.Kill(entireProcessTree: true);
                    }
                }
            }

            running[0].Process.WaitForExit(tick);
        }
    }

    /// <summary>The command line of this process (the apphost, or <c>dotnet maskrcnn.dll</c>), to start the workers with.</summary>
    private static (string Exe, string[] Args) SelfCommand()
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this process's executable to start the workers");
        var args = Environment.GetCommandLineArgs();
        var hosted = Path.GetFileNameWithoutExtension(exe).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        return (exe, hosted ? args : args[1..]);
    }

    /// <summary>
    /// In a worker: asks the kernel for SIGTERM when the launcher dies (killed, or quit by a second Ctrl+C), so no
    /// worker outlives it; exits at once if the launcher is already gone.
    /// </summary>
    internal static void StopWithLauncher()
    {
        if (!OperatingSystem.IsLinux() || !int.TryParse(Environment.GetEnvironmentVariable(LauncherPidVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out var launcher))
        {
            return;
        }

        const int PrSetParentDeathSignal = 1;
        _ = ParentDeathSignal(PrSetParentDeathSignal, 15, 0, 0, 0);
        if (ParentProcessId() != launcher)
        {
            Console.Error.WriteLine("maskrcnn: the launcher is gone; stopping");
            Environment.Exit(1);
        }
    }

    [DllImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static extern int ParentDeathSignal(int option, ulong signal, ulong a, ulong b, ulong c);

    [DllImport("libc", EntryPoint = "getppid")]
    private static extern int ParentProcessId();

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Terminate(int pid, int signal);
}
