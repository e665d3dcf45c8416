using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core.Distributed;

/// <summary>P/Invoke declarations of the shim's c10d calls (stores and process groups are opaque pointers).</summary>
internal static partial class DistributedNativeMethods
{
    private const string Lib = NativeMethods.Lib;

    [LibraryImport(Lib)] internal static partial int mr_dist_backends();
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint mr_store_tcp(string host, int port, int isServer, int worldSize, long timeoutMs);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint mr_store_file(string path, int worldSize, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int mr_store_port(nint store);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static unsafe partial int mr_store_set(nint store, string key, byte* data, long n);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static unsafe partial long mr_store_get(nint store, string key, byte* output, long cap);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int mr_store_add(nint store, string key, long delta, out long result);
    [LibraryImport(Lib)] internal static partial void mr_store_free(nint store);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint mr_pg_gloo(nint store, string prefix, int rank, int size, string? iface, string? hostname, long timeoutMs, int threads);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial nint mr_pg_nccl(nint store, string prefix, int rank, int size, long timeoutMs);
    [LibraryImport(Lib)] internal static partial int mr_pg_allreduce(nint group, TensorHandle tensor, int op);
    [LibraryImport(Lib)] internal static unsafe partial int mr_pg_allreduce_coalesced(nint group, nint* tensors, int n, int op);
    [LibraryImport(Lib)] internal static partial int mr_pg_broadcast(nint group, TensorHandle tensor, int root);
    [LibraryImport(Lib)] internal static partial int mr_pg_barrier(nint group);
    [LibraryImport(Lib)] internal static partial void mr_pg_free(nint group);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_reducer_new(nint group, nint* parameters, int n, long firstBucketBytes, long bucketBytes, int findUnused);
    [LibraryImport(Lib)] internal static unsafe partial int mr_reducer_prepare(nint reducer, nint* outputs, int n);
    [LibraryImport(Lib)] internal static partial void mr_reducer_free(nint reducer);
}
