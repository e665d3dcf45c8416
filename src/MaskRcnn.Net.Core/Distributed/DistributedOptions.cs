using System.Collections;
using System.Globalization;
using System.Net;

namespace MaskRcnn.Net.Core.Distributed;

/// <summary>The communication backend of a <see cref="ProcessGroup"/>.</summary>
public enum DistributedBackend
{
    /// <summary>Gloo over TCP: CPU tensors, any machine (the default).</summary>
    Gloo,

    /// <summary>NCCL: CUDA tensors; needs a CUDA libtorch built with NCCL (not available in Debian's CPU libtorch).</summary>
    Nccl,
}

/// <summary>When a data-parallel trainer averages gradients across ranks.</summary>
public enum GradientSynchronization
{
    /// <summary>After the backward pass: flat buckets, one all-reduce each (simple; communication does not overlap compute).</summary>
    AfterBackward,

    /// <summary>During the backward pass, bucket by bucket as gradients become ready (c10d's Reducer, as DistributedDataParallel).</summary>
    DuringBackward,
}

/// <summary>
/// Where a process stands in a data-parallel job and how it meets the others: <see cref="WorldSize"/> processes
/// (ranks 0 … W−1) rendezvous through a key-value store that rank 0 serves at
/// <see cref="MasterAddress"/>:<see cref="MasterPort"/> (or a shared <see cref="StoreFile"/>), then form a
/// <see cref="ProcessGroup"/> for gradient all-reduce. The same conventions as torch.distributed, so
/// <see cref="FromEnvironment"/> reads the variables torchrun, Slurm scripts and Kubernetes jobs set.
/// </summary>
/// <param name="WorldSize">Number of processes in the job (≥ 1).</param>
/// <param name="Rank">This process's rank (0 … <paramref name="WorldSize"/> − 1); rank 0 serves the store.</param>
public sealed record DistributedOptions(int WorldSize, int Rank)
{
    /// <summary>The default <see cref="MasterPort"/> (torch.distributed's).</summary>
    public const int DefaultPort = 29500;

    /// <summary>The address of rank 0's store (default the loopback address: all ranks on this machine).</summary>
    public string MasterAddress { get; init; } = "127.0.0.1";

    /// <summary>The TCP port of rank 0's store.</summary>
    public int MasterPort { get; init; } = DefaultPort;

    /// <summary>A file all ranks can reach (local or network file system) used as the store instead of TCP, or null.</summary>
    public string? StoreFile { get; init; }

    /// <summary>The communication backend.</summary>
    public DistributedBackend Backend { get; init; } = DistributedBackend.Gloo;

    /// <summary>
    /// The longest any rendezvous or collective may wait for the other ranks before failing with a
    /// <see cref="DistributedException"/> (default 10 minutes; torch's default is 30).
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The network interface Gloo binds to (e.g. <c>eth0</c>; torch's <c>GLOO_SOCKET_IFNAME</c>), or null: the
    /// loopback interface when <see cref="MasterAddress"/> is a loopback address, else the address this machine's
    /// hostname resolves to.
    /// </summary>
    public string? NetworkInterface { get; init; }

    /// <summary>
    /// The store at <see cref="MasterAddress"/>:<see cref="MasterPort"/> is served by a launcher (torchrun's agent:
    /// <c>TORCHELASTIC_USE_AGENT_STORE=True</c>), so rank 0 connects to it instead of serving it.
    /// </summary>
    public bool StoreServedByLauncher { get; init; }

    /// <summary>Distinguishes the keys of a restarted job in a store that outlives it (torchrun's restart count).</summary>
    public int RestartCount { get; init; }

    /// <summary>This process's index among the ranks on its machine (selects its GPU; informational on CPU).</summary>
    public int LocalRank { get; init; }

    /// <summary>When gradients are averaged (see <see cref="GradientSynchronization"/>).</summary>
    public GradientSynchronization GradientSync { get; init; } = GradientSynchronization.AfterBackward;

    /// <summary>Gloo's worker threads for collectives (default 2).</summary>
    public int CommunicationThreads { get; init; } = 2;

    /// <summary>Whether <see cref="MasterAddress"/> is a loopback address (127.0.0.0/8, ::1 or <c>localhost</c>).</summary>
    public bool IsLoopback => MasterAddress.Equals("localhost", StringComparison.OrdinalIgnoreCase) ||
        (IPAddress.TryParse(MasterAddress, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>The store's address as the messages show it.</summary>
    public string StoreAddress => StoreFile is { } f ? $"file {f}" : $"{MasterAddress}:{MasterPort.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        if (WorldSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(WorldSize), WorldSize, $"the world size must be at least 1, got {WorldSize}");
        }

        if (Rank < 0 || Rank >= WorldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank, $"rank {Rank} is not in 0 … {WorldSize - 1} (world size {WorldSize})");
        }

        if (StoreFile is null)
        {
            if (string.IsNullOrWhiteSpace(MasterAddress))
            {
                throw new ArgumentException("the master address is empty", nameof(MasterAddress));
            }

            if (MasterPort is < 1 or > 65535)
            {
                throw new ArgumentOutOfRangeException(nameof(MasterPort), MasterPort, $"the master port must be in 1 … 65535, got {MasterPort}");
            }
        }
        else if (string.IsNullOrWhiteSpace(StoreFile))
        {
            throw new ArgumentException("the store file path is empty", nameof(StoreFile));
        }

        if (Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "the timeout must be positive");
        }

        if (LocalRank < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(LocalRank), LocalRank, "the local rank must not be negative");
        }

        if (CommunicationThreads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(CommunicationThreads), CommunicationThreads, "at least one communication thread is needed");
        }
    }

    /// <summary>
    /// The options torch.distributed's launchers pass through the environment: <c>WORLD_SIZE</c>, <c>RANK</c>,
    /// <c>MASTER_ADDR</c> (default 127.0.0.1), <c>MASTER_PORT</c> (default 29500), <c>LOCAL_RANK</c>,
    /// <c>GLOO_SOCKET_IFNAME</c>, torchrun's <c>TORCHELASTIC_USE_AGENT_STORE</c> and <c>TORCHELASTIC_RESTART_COUNT</c>,
    /// <c>MASKRCNN_DIST_TIMEOUT</c> (seconds), <c>MASKRCNN_GRADIENT_SYNC</c> and <c>MASKRCNN_STORE_FILE</c> (a file store
    /// instead of TCP, as the single-machine launcher uses). Null when <c>WORLD_SIZE</c> is not set.
    /// </summary>
    /// <param name="environment">The variables (null: this process's environment).</param>
    /// <exception cref="ArgumentException">A variable is missing or not a number; the message names it.</exception>
    public static DistributedOptions? FromEnvironment(IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        string? Get(string name) => environment[name] as string is { Length: > 0 } v ? v.Trim() : null;
        int Int(string name, string value) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
            ? n : throw new ArgumentException($"environment variable {name}={value} is not an integer", name);

        if (Get("WORLD_SIZE") is not { } worldText)
        {
            return null;
        }

        var rankText = Get("RANK") ?? throw new ArgumentException("WORLD_SIZE is set but RANK is not: set both (torchrun, Slurm and the maskrcnn launcher do)", "RANK");
        var options = new DistributedOptions(Int("WORLD_SIZE", worldText), Int("RANK", rankText))
        {
            MasterAddress = Get("MASTER_ADDR") ?? "127.0.0.1",
            MasterPort = Get("MASTER_PORT") is { } port ? Int("MASTER_PORT", port) : DefaultPort,
            LocalRank = Get("LOCAL_RANK") is { } local ? Int("LOCAL_RANK", local) : 0,
            NetworkInterface = Get("GLOO_SOCKET_IFNAME"),
            StoreFile = Get("MASKRCNN_STORE_FILE"),
            StoreServedByLauncher = string.Equals(Get("TORCHELASTIC_USE_AGENT_STORE"), "True", StringComparison.OrdinalIgnoreCase),
            RestartCount = Get("TORCHELASTIC_RESTART_COUNT") is { } restarts ? Int("TORCHELASTIC_RESTART_COUNT", restarts) : 0,
        };
        if (Get("MASKRCNN_GRADIENT_SYNC") is { } sync)
        {
            options = options with
            {
                GradientSync = Enum.TryParse<GradientSynchronization>(sync, ignoreCase: true, out var g) && Enum.IsDefined(g) ? g
                    : throw new ArgumentException($"environment variable MASKRCNN_GRADIENT_SYNC={sync} is not AfterBackward or DuringBackward", "MASKRCNN_GRADIENT_SYNC"),
            };
        }

        if (Get("MASKRCNN_DIST_TIMEOUT") is { } timeout)
        {
            options = options with { Timeout = TimeSpan.FromSeconds(Int("MASKRCNN_DIST_TIMEOUT", timeout)) };
        }

        options.Validate();
        return options;
    }
}
