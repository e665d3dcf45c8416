// A caching allocator for libtorch's CPU tensors.
//
// Why: a prediction allocates and frees feature maps of tens of MB (an R50-FPN level-2 map at 800 px is 55 MB in
// float32). glibc serves blocks above its mmap threshold with a fresh mmap and returns them with munmap, so every
// such tensor's pages are faulted in and zeroed by the kernel again on first touch: measured here, 1.6 million page
// faults for 4 predictions, and memory-bound steps (a 64->256 1x1 convolution, an out-of-place ReLU) 2.5-4x slower
// than on reused memory. This allocator keeps freed blocks of at least `min_block` bytes in a cache (up to `limit`
// bytes in all) and hands them out again for requests of the same size class, so their pages stay resident.
// Blocks of at least 2 MiB are 2 MiB-aligned and advised as transparent huge pages (one fault per 2 MiB when new).
// Smaller requests are plain aligned allocations. Thread-safe; no model logic.
#include "mr_common.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

// libtorch >= 2.3 made Allocator::allocate non-const.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define MR_ALLOCATE_CONST
#else
#define MR_ALLOCATE_CONST const
#endif

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kSmallAlignment = 64;        // libtorch's own CPU alignment
constexpr size_t kHugeAlignment = 2 * kMiB;   // x86-64 transparent huge page

struct CacheState {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;   // size class -> cached block
  std::unordered_map<void*, size_t> live;     // block handed out (or cached) -> its size class
  size_t cached_bytes = 0;
  size_t limit = 0;
  size_t min_block = 128 * 1024;
  int64_t hits = 0;
  int64_t misses = 0;
};

CacheState& state() {
  static auto* s = new CacheState();   // never destroyed: tensors may be freed during static destruction
  return *s;
}

// Size classes: 64 KiB steps up to 1 MiB, whole MiB up to 16 MiB, then eighths of the power of two below (at most
// 12.5 % unused above 1 MiB).
size_t size_class(size_t n) {
  constexpr size_t k64KiB = 64 * 1024;
  if (n <= kMiB) return (n + k64KiB - 1) / k64KiB * k64KiB;
  if (n <= 16 * kMiB) return (n + kMiB - 1) / kMiB * kMiB;
  size_t p = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(n)));
  size_t step = p / 8;
  return (n + step - 1) / step * step;
}

void* aligned(size_t bytes, size_t alignment) {
  void* p = nullptr;
  if (posix_memalign(&p, alignment, bytes == 0 ? alignment : bytes) != 0) return nullptr;
  return p;
}

void release(void* ptr) {
  auto& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.live.find(ptr);
    if (it != s.live.end()) {
      if (s.cached_bytes + it->second <= s.limit) {
        s.cached_bytes += it->second;
        s.free_blocks.emplace(it->second, ptr);
        return;   // stays in `live` while cached
      }
      s.live.erase(it);
    }
  }
  std::free(ptr);   // small, uncached, or allocated before this allocator was installed (posix_memalign too)
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) MR_ALLOCATE_CONST override {
    auto& s = state();
    void* p = nullptr;
    size_t cls = 0;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (n >= s.min_block && s.limit > 0) {
        cls = size_class(n);
        auto it = s.free_blocks.find(cls);
        if (it != s.free_blocks.end()) {
          p = it->second;
          s.free_blocks.erase(it);
          s.cached_bytes -= cls;
          ++s.hits;
        } else {
          ++s.misses;
        }
      }
    }
    if (p == nullptr) {
      const size_t bytes = cls > 0 ? cls : n;
      p = aligned(bytes, bytes >= kHugeAlignment ? kHugeAlignment : kSmallAlignment);
      if (p == nullptr) throw std::bad_alloc();
      if (bytes >= kHugeAlignment) madvise(p, bytes, MADV_HUGEPAGE);   // advice only: errors are harmless
      if (cls > 0) {
        std::lock_guard<std::mutex> lock(s.mutex);
        s.live.emplace(p, cls);
      }
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  // Required by libtorch >= 2.2 (pure virtual there); unused by 1.13.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
};

CachingCpuAllocator g_allocator;
std::once_flag g_installed;

void trim(CacheState& s, size_t limit) {
  std::vector<void*> out;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    while (s.cached_bytes > limit && !s.free_blocks.empty()) {
      auto it = std::prev(s.free_blocks.end());   // largest first
      s.cached_bytes -= it->first;
      s.live.erase(it->second);
      out.push_back(it->second);
      s.free_blocks.erase(it);
    }
  }
  for (void* p : out) std::free(p);
}

}  // namespace

using namespace mr;

// Installs the allocator (first call) and sets the cache's limit and smallest cached block, in bytes. A limit of 0
// empties the cache and stops caching (the allocator stays installed: plain aligned allocations).
MR_API int mr_cpu_cache_configure(int64_t limit_bytes, int64_t min_block_bytes) {
  return guard([&] {
    TORCH_CHECK(limit_bytes >= 0, "cache limit must be >= 0, got ", limit_bytes);
    TORCH_CHECK(min_block_bytes >= 4096, "smallest cached block must be >= 4096 bytes, got ", min_block_bytes);
    std::call_once(g_installed, [] { c10::SetCPUAllocator(&g_allocator, /*priority=*/100); });
    auto& s = state();
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.limit = static_cast<size_t>(limit_bytes);
      s.min_block = static_cast<size_t>(min_block_bytes);
    }
    trim(s, static_cast<size_t>(limit_bytes));
    return 0;
  }, -1);
}

// Frees every cached block (memory handed out stays valid).
MR_API int mr_cpu_cache_release() {
  return guard([&] {
    trim(state(), 0);
    return 0;
  }, -1);
}

// stats[0] = cached bytes, [1] = limit, [2] = hits, [3] = misses, [4] = 1 when installed as libtorch's CPU allocator.
MR_API int mr_cpu_cache_stats(int64_t* stats) {
  return guard([&] {
    TORCH_CHECK(stats != nullptr, "stats is null");
    auto& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    stats[0] = static_cast<int64_t>(s.cached_bytes);
    stats[1] = static_cast<int64_t>(s.limit);
    stats[2] = s.hits;
    stats[3] = s.misses;
    stats[4] = c10::GetCPUAllocator() == &g_allocator ? 1 : 0;
    return 0;
  }, -1);
}
