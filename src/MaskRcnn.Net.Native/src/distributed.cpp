// c10d for data-parallel training: key-value stores (TCP, file), process groups (Gloo; NCCL when the libtorch has
// it) and the collectives a trainer needs (all-reduce, broadcast, barrier). Every call blocks until the collective
// has finished or failed; failures (a peer gone, a timeout, a bad address) become the per-thread last error.
// Built without c10d (a libtorch without distributed support, or without Gloo's headers) every function reports that.
#include "mr_common.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#if MR_WITH_C10D
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#if MR_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

using namespace mr;

#if MR_WITH_C10D
namespace {
using StorePtr = c10::intrusive_ptr<c10d::Store>;
using GroupPtr = c10::intrusive_ptr<c10d::ProcessGroup>;

StorePtr& S(void* h) {
  if (h == nullptr) throw std::invalid_argument("store handle is null (disposed store?)");
  return *static_cast<StorePtr*>(h);
}
GroupPtr& G(void* h) {
  if (h == nullptr) throw std::invalid_argument("process group handle is null (disposed group?)");
  return *static_cast<GroupPtr*>(h);
}
std::chrono::milliseconds ms(int64_t v) { return std::chrono::milliseconds(v); }

// The ABI's reduction codes (0 sum, 1 product, 2 min, 3 max), independent of c10d's enum order.
c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0: return c10d::ReduceOp(c10d::ReduceOp::SUM);
    case 1: return c10d::ReduceOp(c10d::ReduceOp::PRODUCT);
    case 2: return c10d::ReduceOp(c10d::ReduceOp::MIN);
    case 3: return c10d::ReduceOp(c10d::ReduceOp::MAX);
    default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }
}

void wait(const c10::intrusive_ptr<c10d::Work>& work) {
  work->wait();  // the group's own timeout bounds every collective; failures throw
}
}  // namespace
#endif

// Bit 0: c10d with Gloo compiled in; bit 1: NCCL compiled in.
MR_API int mr_dist_backends() {
#if MR_WITH_C10D
  return 1 | (MR_WITH_NCCL ? 2 : 0);
#else
  return 0;
#endif
}

#if MR_WITH_C10D
// A TCP store at host:port. The server (one per job) listens there (port 0: an ephemeral port, see mr_store_port);
// clients connect to it, retrying until the timeout.
MR_API void* mr_store_tcp(const char* host, int port, int is_server, int world_size, int64_t timeout_ms) {
  return guard([&]() -> void* {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = is_server != 0;
    if (world_size > 0) o.numWorkers = static_cast<std::size_t>(world_size);
    o.waitWorkers = false;  // the process group's rendezvous waits for the peers, bounded by its timeout
    o.timeout = ms(timeout_ms);
    return new StorePtr(c10::make_intrusive<c10d::TCPStore>(std::string(host), o));
  }, static_cast<void*>(nullptr));
}

// A store in a file shared by all ranks (a local or network file system).
MR_API void* mr_store_file(const char* path, int world_size, int64_t timeout_ms) {
  return guard([&]() -> void* {
    auto s = c10::make_intrusive<c10d::FileStore>(std::string(path), world_size);
    s->setTimeout(ms(timeout_ms));
    return new StorePtr(s);
  }, static_cast<void*>(nullptr));
}

// The port a TCP store listens on or connects to (-1 for other stores).
MR_API int mr_store_port(void* h) {
  return guard([&] {
    auto* tcp = dynamic_cast<c10d::TCPStore*>(S(h).get());
    if (tcp == nullptr) throw std::invalid_argument("not a TCP store");
    return static_cast<int>(tcp->getPort());
  }, -1);
}

MR_API int mr_store_set(void* h, const char* key, const uint8_t* data, int64_t n) {
  return run([&] { S(h)->set(std::string(key), std::vector<uint8_t>(data, data + n)); });
}

// Waits (up to the store's timeout) for `key`, copies at most `cap` bytes of its value; returns the value's length.
MR_API int64_t mr_store_get(void* h, const char* key, uint8_t* out, int64_t cap) {
  return guard([&] {
    auto v = S(h)->get(std::string(key));
    std::memcpy(out, v.data(), std::min<size_t>(v.size(), static_cast<size_t>(cap)));
    return static_cast<int64_t>(v.size());
  }, static_cast<int64_t>(-1));
}

MR_API int mr_store_add(void* h, const char* key, int64_t delta, int64_t* result) {
  return run([&] { *result = S(h)->add(std::string(key), delta); });
}

MR_API void mr_store_free(void* h) {
  guard([&] { delete static_cast<StorePtr*>(h); return 0; }, 0);
}

// A Gloo process group of `size` ranks over `store` (keys under `prefix`). Its transport binds to the network
// interface `iface` if given, else to the address `hostname` resolves to, else to this machine's hostname.
MR_API void* mr_pg_gloo(void* store, const char* prefix, int rank, int size, const char* iface, const char* hostname,
                        int64_t timeout_ms, int threads) {
  return guard([&]() -> void* {
    auto o = c10d::ProcessGroupGloo::Options::create(ms(timeout_ms));
    if (iface != nullptr && *iface != 0) {
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (hostname != nullptr && *hostname != 0) {
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
    } else {
      o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    o->threads = threads > 0 ? threads : 2;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), S(store));
    GroupPtr pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, o);
    return new GroupPtr(pg);
  }, static_cast<void*>(nullptr));
}

MR_API void* mr_pg_nccl(void* store, const char* prefix, int rank, int size, int64_t timeout_ms) {
  return guard([&]() -> void* {
#if MR_WITH_NCCL
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = ms(timeout_ms);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), S(store));
    GroupPtr pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, size, o);
    return new GroupPtr(pg);
#else
    throw std::runtime_error("this build of the native library has no NCCL (it needs a CUDA libtorch built with NCCL)");
#endif
  }, static_cast<void*>(nullptr));
}

MR_API int mr_pg_rank(void* h) { return guard([&] { return G(h)->getRank(); }, -1); }
MR_API int mr_pg_size(void* h) { return guard([&] { return G(h)->getSize(); }, -1); }

// op: 0 sum, 1 product, 2 min, 3 max. In place.
MR_API int mr_pg_allreduce(void* h, mr_tensor t, int op) {
  return run([&] {
    std::vector<at::Tensor> v{T(t)};
    c10d::AllreduceOptions o;
    o.reduceOp = reduce_op(op);
    wait(G(h)->allreduce(v, o));
  });
}

// Several tensors in one collective (Gloo: dense tensors of one dtype on the CPU). In place.
MR_API int mr_pg_allreduce_coalesced(void* h, const mr_tensor* ts, int n, int op) {
  return run([&] {
    std::vector<at::Tensor> v;
    v.reserve(n);
    for (int i = 0; i < n; ++i) v.push_back(T(ts[i]));
    c10d::AllreduceCoalescedOptions o;
    o.reduceOp = reduce_op(op);
    wait(G(h)->allreduce_coalesced(v, o));
  });
}

MR_API int mr_pg_broadcast(void* h, mr_tensor t, int root) {
  return run([&] {
    std::vector<at::Tensor> v{T(t)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    wait(G(h)->broadcast(v, o));
  });
}

MR_API int mr_pg_barrier(void* h) {
  return run([&] { wait(G(h)->barrier()); });
}

MR_API void mr_pg_free(void* h) {
  guard([&] { delete static_cast<GroupPtr*>(h); return 0; }, 0);
}

// c10d's Reducer (DistributedDataParallel's engine) over `params` (in the model's order): autograd hooks on the
// parameters all-reduce gradients in buckets (the first `first_bucket_bytes`, then `bucket_bytes` each, filled in
// reverse parameter order, as gradients become ready) while backward still runs, and write the averages into .grad
// when it ends. Only backward passes preceded by mr_reducer_prepare are reduced (gradient accumulation skips it).
MR_API void* mr_reducer_new(void* pg, const mr_tensor* params, int n, int64_t first_bucket_bytes, int64_t bucket_bytes,
                            int find_unused) {
  return guard([&]() -> void* {
    std::vector<at::Tensor> ps;
    ps.reserve(n);
    for (int i = 0; i < n; ++i) ps.push_back(T(params[i]));
    std::vector<size_t> limits{static_cast<size_t>(first_bucket_bytes), static_cast<size_t>(bucket_bytes)};
    auto assignment = c10d::compute_bucket_assignment_by_size(ps, limits, std::vector<bool>(ps.size(), false));
    auto buckets = std::get<0>(assignment);
    auto sizes = std::get<1>(assignment);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(sizes.begin(), sizes.end());
    return new c10d::Reducer(ps, buckets, sizes, G(pg), std::vector<bool>(ps.size(), false), bucket_bytes,
                             find_unused != 0, /*gradient_as_bucket_view=*/false, {}, first_bucket_bytes);
  }, static_cast<void*>(nullptr));
}

// Arms the hooks for the next backward pass from `outputs` (the loss; with find_unused, the graph is searched from
// it for parameters that get no gradient this time).
MR_API int mr_reducer_prepare(void* r, const mr_tensor* outputs, int n) {
  return run([&] {
    if (r == nullptr) throw std::invalid_argument("reducer handle is null (disposed?)");
    std::vector<at::Tensor> outs;
    for (int i = 0; i < n; ++i) outs.push_back(T(outputs[i]));
    static_cast<c10d::Reducer*>(r)->prepare_for_backward(outs);
  });
}

MR_API void mr_reducer_free(void* r) {
  guard([&] { delete static_cast<c10d::Reducer*>(r); return 0; }, 0);
}
#else
namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "this build of the native library has no c10d: it was built against a libtorch without distributed support "
      "or without Gloo's headers (Debian: apt-get install libgloo-dev, then rebuild)");
}
}  // namespace
MR_API void* mr_store_tcp(const char*, int, int, int, int64_t) { return guard([]() -> void* { unavailable(); }, static_cast<void*>(nullptr)); }
MR_API void* mr_store_file(const char*, int, int64_t) { return guard([]() -> void* { unavailable(); }, static_cast<void*>(nullptr)); }
MR_API int mr_store_port(void*) { return guard([]() -> int { unavailable(); }, -1); }
MR_API int mr_store_set(void*, const char*, const uint8_t*, int64_t) { return run([] { unavailable(); }); }
MR_API int64_t mr_store_get(void*, const char*, uint8_t*, int64_t) { return guard([]() -> int64_t { unavailable(); }, static_cast<int64_t>(-1)); }
MR_API int mr_store_add(void*, const char*, int64_t, int64_t*) { return run([] { unavailable(); }); }
MR_API void mr_store_free(void*) {}
MR_API void* mr_pg_gloo(void*, const char*, int, int, const char*, const char*, int64_t, int) { return guard([]() -> void* { unavailable(); }, static_cast<void*>(nullptr)); }
MR_API void* mr_pg_nccl(void*, const char*, int, int, int64_t) { return guard([]() -> void* { unavailable(); }, static_cast<void*>(nullptr)); }
MR_API int mr_pg_rank(void*) { return guard([]() -> int { unavailable(); }, -1); }
MR_API int mr_pg_size(void*) { return guard([]() -> int { unavailable(); }, -1); }
MR_API int mr_pg_allreduce(void*, mr_tensor, int) { return run([] { unavailable(); }); }
MR_API int mr_pg_allreduce_coalesced(void*, const mr_tensor*, int, int) { return run([] { unavailable(); }); }
MR_API int mr_pg_broadcast(void*, mr_tensor, int) { return run([] { unavailable(); }); }
MR_API int mr_pg_barrier(void*) { return run([] { unavailable(); }); }
MR_API void mr_pg_free(void*) {}
MR_API void* mr_reducer_new(void*, const mr_tensor*, int, int64_t, int64_t, int) { return guard([]() -> void* { unavailable(); }, static_cast<void*>(nullptr)); }
MR_API int mr_reducer_prepare(void*, const mr_tensor*, int) { return run([] { unavailable(); }); }
MR_API void mr_reducer_free(void*) {}
#endif
