using System.Net;
using System.Net.Sockets;
using FluentAssertions;
using MaskRcnn.Net.Core.Distributed;

namespace MaskRcnn.Net.Core.Tests.Distributed;

/// <summary>
/// c10d through the shim: two ranks in this process (threads), meeting through a file store (nothing listens on a
/// network port) and exchanging tensors over Gloo bound to the loopback interface. Results are checked against
/// sums, maxima and copies computed by hand; failures against the messages a user needs.
/// </summary>
public sealed class ProcessGroupTests : IDisposable
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(120);
    private readonly string dir = Directory.CreateTempSubdirectory("mrcnn-pg-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private DistributedOptions Options(int rank, int world, string store = "store", double timeoutSeconds = 30) =>
        new(world, rank) { StoreFile = Path.Combine(dir, store), Timeout = TimeSpan.FromSeconds(timeoutSeconds) };

    /// <summary>Runs <paramref name="body"/> as every rank of a group on its own thread; returns each rank's result.</summary>
    private T[] RunRanks<T>(int world, Func<ProcessGroup, T> body, string store = "store")
    {
        var tasks = Enumerable.Range(0, world).Select(rank => Task.Factory.StartNew(() =>
        {
            using var group = ProcessGroup.Create(Options(rank, world, store));
            return body(group);
        }, TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(tasks, HangGuard).Should().BeTrue("every rank finishes (hang guard)");
        return tasks.Select(t => t.Result).ToArray();
    }

    [Fact]
    public void The_native_library_has_c10d_with_gloo()
    {
        ProcessGroup.IsAvailable.Should().BeTrue("the shim is built against libtorch's c10d and Gloo's headers (libgloo-dev)");
    }

    [Fact]
    public void All_reduce_sums_and_maxes_across_ranks_in_place()
    {
        var results = RunRanks(2, g =>
        {
            // Rank r holds [r+1, 10(r+1), -r] and a second tensor of 1000 values r*i.
            using var a = Tensor.FromArray(new float[] { g.Rank + 1, 10 * (g.Rank + 1), -g.Rank }, 3);
            using var b = Tensor.FromArray(Enumerable.Range(0, 1000).Select(i => (double)(g.Rank * i)).ToArray(), 1000);
            using var m = Tensor.FromArray(new long[] { g.Rank == 0 ? 7 : 3, g.Rank == 0 ? -1 : 4 }, 2);
            g.AllReduce(a);
            g.AllReduce(m, ReduceOp.Max);
            g.AllReduce([b]);
            return (a.ToArray<float>(), m.ToArray<long>(), b.ToArray<double>());
        });
        foreach (var (a, m, b) in results)
        {
            a.Should().Equal(3f, 30f, -1f); // (1+2, 10+20, 0-1)
            m.Should().Equal(7L, 4L);
            b.Should().Equal(Enumerable.Range(0, 1000).Select(i => (double)i)); // 0*i + 1*i
        }
    }

    [Fact]
    public void Coalesced_all_reduce_of_several_tensors_equals_one_by_one()
    {
        var results = RunRanks(2, g =>
        {
            var shapes = new[] { new long[] { 4, 3 }, [7], [2, 2, 2] };
            var tensors = shapes.Select((s, i) =>
            {
                var n = (int)s.Aggregate(1L, (x, y) => x * y);
                return Tensor.FromArray(Enumerable.Range(0, n).Select(k => (float)(k * (i + 1) + 100 * g.Rank)).ToArray(), s);
            }).ToArray();
            g.AllReduce(tensors);
            var values = tensors.Select(t => t.ToArray<float>()).ToArray();
            foreach (var t in tensors)
            {
                t.Dispose();
            }

            return values;
        });
        foreach (var values in results)
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i].Should().Equal(Enumerable.Range(0, values[i].Length).Select(k => 2f * k * (i + 1) + 100f));
            }
        }
    }

    [Fact]
    public void Broadcast_copies_the_root_tensor_to_every_rank()
    {
        var results = RunRanks(3, g =>
        {
            using var t = Tensor.FromArray(Enumerable.Range(0, 6).Select(i => (float)(i + 10 * g.Rank)).ToArray(), 2, 3);
            g.Broadcast(t, root: 1);
            g.Barrier();
            return t.ToArray<float>();
        });
        foreach (var r in results)
        {
            r.Should().Equal(10f, 11f, 12f, 13f, 14f, 15f);
        }
    }

    [Fact]
    public void A_group_of_one_is_its_own_result()
    {
        using var g = ProcessGroup.Create(Options(0, 1));
        using var t = Tensor.FromArray(new float[] { 1.5f, -2 }, 2);
        g.AllReduce(t);
        g.Broadcast(t);
        g.Barrier();
        t.ToArray<float>().Should().Equal(1.5f, -2f);
    }

    [Fact]
    public void The_store_carries_bytes_between_ranks()
    {
        var results = RunRanks(2, g =>
        {
            if (g.Rank == 0)
            {
                g.StoreSet("hello", Enumerable.Range(0, 600).Select(i => (byte)i).ToArray());
                return 600;
            }

            return g.StoreGet("hello").Select((b, i) => b == (byte)i).Count(ok => ok);
        });
        results.Should().Equal(600, 600);
    }

    [Fact]
    public void A_peer_that_leaves_makes_the_next_collective_fail_with_a_typed_error()
    {
        var left = new ManualResetEventSlim();
        var results = RunRanks(2, g =>
        {
            using var t = Tensor.Ones([16]);
            g.AllReduce(t); // both present
            if (g.Rank == 1)
            {
                g.Dispose(); // closes its Gloo connections, as a process that dies does
                left.Set();
                return (Exception?)null;
            }

            left.Wait(HangGuard);
            return Record.Exception(() => g.AllReduce(t));
        }, "leave");
        var error = results[0].Should().BeOfType<DistributedException>().Subject;
        error.Rank.Should().Be(0);
        error.Operation.Should().Be("all-reduce");
        error.Message.Should().Contain("rank 0 of 2").And.Contain("all-reduce failed").And.Contain(Path.Combine(dir, "leave"));
    }

    [Fact]
    public void A_rank_alone_fails_the_rendezvous_after_the_timeout()
    {
        var act = () => ProcessGroup.Create(Options(0, 2, "alone", timeoutSeconds: 2));
        var error = act.Should().Throw<DistributedException>().Which;
        error.Operation.Should().Be("rendezvous");
        error.Message.Should().Contain("rank 0 of 2").And.Contain("not all 2 ranks met").And.Contain("2 s");
    }

    [Theory]
    [InlineData(2, 2, "rank 2 is not in 0 … 1")]
    [InlineData(2, -1, "rank -1 is not in 0 … 1")]
    [InlineData(0, 0, "world size must be at least 1")]
    public void Invalid_rank_or_world_size_is_refused_before_any_connection(int world, int rank, string expected)
    {
        var act = () => ProcessGroup.Create(new DistributedOptions(world, rank));
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*{expected}*");
    }

    [Fact]
    public void A_master_port_in_use_is_a_clear_error_at_start()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var act = () => ProcessGroup.Create(new DistributedOptions(2, 0) { MasterPort = port, Timeout = TimeSpan.FromSeconds(5) });
        var error = act.Should().Throw<DistributedException>().Which;
        error.Operation.Should().Be("store");
        error.Message.Should().Contain($"could not serve the store on port {port}").And.Contain("in use");
    }

    [Fact]
    public void An_unreachable_master_is_a_clear_error_after_the_timeout()
    {
        // A loopback port nobody listens on: bind, note it, release it.
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var act = () => ProcessGroup.Create(new DistributedOptions(2, 1) { MasterPort = port, Timeout = TimeSpan.FromSeconds(2) });
        var error = act.Should().Throw<DistributedException>().Which;
        error.Rank.Should().Be(1);
        error.Message.Should().Contain($"rank 1 of 2 could not reach the master at 127.0.0.1:{port} within 2 s");
    }

    [Fact]
    public void Options_come_from_the_launcher_environment()
    {
        var env = new Dictionary<string, string>
        {
            ["WORLD_SIZE"] = "4", ["RANK"] = "3", ["MASTER_ADDR"] = "10.0.0.5", ["MASTER_PORT"] = "29611",
            ["LOCAL_RANK"] = "1", ["GLOO_SOCKET_IFNAME"] = "eth1", ["MASKRCNN_DIST_TIMEOUT"] = "90",
        };
        var o = DistributedOptions.FromEnvironment(env)!;
        o.Should().Be(new DistributedOptions(4, 3)
        {
            MasterAddress = "10.0.0.5", MasterPort = 29611, LocalRank = 1, NetworkInterface = "eth1", Timeout = TimeSpan.FromSeconds(90),
        });
        o.IsLoopback.Should().BeFalse();
        DistributedOptions.FromEnvironment(new Dictionary<string, string>()).Should().BeNull();
        var missingRank = () => DistributedOptions.FromEnvironment(new Dictionary<string, string> { ["WORLD_SIZE"] = "2" });
        missingRank.Should().Throw<ArgumentException>().WithMessage("*RANK is not*");
        var badPort = () => DistributedOptions.FromEnvironment(new Dictionary<string, string> { ["WORLD_SIZE"] = "2", ["RANK"] = "0", ["MASTER_PORT"] = "x1" });
        badPort.Should().Throw<ArgumentException>().WithMessage("*MASTER_PORT=x1 is not an integer*");
        var outOfRange = () => DistributedOptions.FromEnvironment(new Dictionary<string, string> { ["WORLD_SIZE"] = "2", ["RANK"] = "2" });
        outOfRange.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*rank 2 is not in 0 … 1*");
    }
}
