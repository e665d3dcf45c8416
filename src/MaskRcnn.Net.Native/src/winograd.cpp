// 3×3 stride-1 float32 convolutions on the CPU through oneDNN's Winograd kernels (F(4,3) / F(2,3) on AVX-512), for
// calls that record no gradient (prediction). libtorch's conv2d always asks oneDNN for its direct algorithm; on this
// project's shapes (256→256 channels on FPN-level maps, the RPN head, the mask head) Winograd does the same
// convolution with 2.25–4× fewer multiplications (measured: 64 GFLOP on [1, 256, 200, 272] in 122 ms including the
// layout reorders, 263 ms direct). Results differ from the direct algorithm by float rounding only (~1e-6 relative).
//
// Compiled in when the oneDNN headers are present (Debian: libdnnl-dev, the oneDNN that Debian's libtorch links);
// otherwise, or when oneDNN has no Winograd kernel for the CPU/shape, or when turned off (MASKRCNN_WINOGRAD=0,
// WinogradConvolution.Enabled), conv2d is libtorch's. Weights are transformed once and cached per weight tensor; the cache entry holds a weak reference to
// the tensor and a hash of its values, so a freed, replaced or overwritten weight is never served stale.
#include "mr_common.h"

#include <atomic>
#include <cstring>
#include <list>
#include <mutex>

#if MR_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
// oneDNN 3 has no x86 Winograd kernels (and another primitive API): the path is for oneDNN 2.x, which Debian's
// libtorch 1.13 links.
#if DNNL_VERSION_MAJOR == 2
#define MR_WINOGRAD 1
#endif
#endif
#ifndef MR_WINOGRAD
#define MR_WINOGRAD 0
#endif

namespace mr {
namespace {

std::atomic<int> g_enabled{1};  // the managed side applies MASKRCNN_WINOGRAD when it loads the library
std::atomic<int64_t> g_calls{0}, g_fallbacks{0}, g_transforms{0};

bool enabled() { return g_enabled.load() == 1; }

#if MR_WINOGRAD
using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A 128-bit hash of a tensor's bytes: four independent multiply-rotate lanes over 8-byte words (so the loop runs at
// memory speed), mixed at the end. Weights are cached by this hash, so a weight computed afresh at every call with the
// same values (a batch norm folded into its convolution) is transformed once, and a weight changed in any way (loaded,
// trained, written through a span) is transformed again.
struct Hash128 {
  uint64_t a, b;
  bool operator==(const Hash128& o) const { return a == o.a && b == o.b; }
};

inline uint64_t rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }
inline uint64_t mix(uint64_t z) {  // a 64-bit finaliser (xor-shift-multiply)
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Hash128 content_hash(const at::Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.data_ptr());
  const size_t n = t.nbytes();
  constexpr uint64_t k1 = 0x9e3779b185ebca87ull, k2 = 0xc2b2ae3d27d4eb4full;
  uint64_t l[4] = {n ^ k1, n ^ k2, ~n * k1, ~n * k2};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int j = 0; j < 4; ++j) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * j, 8);
      l[j] = rotl(l[j] + v * k2, 31) * k1;
    }
  }
  uint64_t tail = 0;
  for (int shift = 0; i < n; ++i, shift = (shift + 8) % 64) tail ^= static_cast<uint64_t>(p[i]) << shift;
  l[0] = rotl(l[0] + tail * k2, 31) * k1;
  const uint64_t x = mix(l[0] ^ rotl(l[1], 17)) + mix(l[2] ^ rotl(l[3], 43));
  const uint64_t y = mix(l[1] + rotl(l[2], 7)) ^ mix(l[3] + rotl(l[0], 29) + n);
  return {x, y};
}

struct PackedWeight {
  Hash128 hash;
  memory::desc desc;  // the primitive's weight layout (also fixes shape and algorithm variant)
  at::Tensor packed;  // the Winograd-domain weights in that layout
};

// Most recently used first. Bounded in bytes: a Winograd F(4,3) weight is 4x its 3x3 weight (R50-FPN Mask R-CNN:
// about 270 MB in all).
constexpr size_t kCacheBytes = size_t(512) << 20;
std::mutex g_mutex;
std::list<PackedWeight> g_weights;
size_t g_weight_bytes = 0;

// The weights in the primitive's layout, transformed at the first call with these values and reused after.
at::Tensor packed_weights(const at::Tensor& w, const memory::desc& want, dnnl::stream& stream) {
  const Hash128 hash = content_hash(w);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (auto it = g_weights.begin(); it != g_weights.end(); ++it) {
      if (it->hash == hash && it->desc == want) {
        g_weights.splice(g_weights.begin(), g_weights, it);
        return it->packed;
      }
    }
  }
  at::Tensor packed = at::empty({static_cast<int64_t>(want.get_size())}, w.options().dtype(at::kByte));
  const tag layout = w.is_contiguous() ? tag::oihw : tag::ohwi;  // the caller passes one of the two
  memory user({{w.size(0), w.size(1), 3, 3}, memory::data_type::f32, layout}, cpu_engine(), w.data_ptr());
  memory dst(want, cpu_engine(), packed.data_ptr());
  dnnl::reorder(user, dst).execute(stream, user, dst);
  stream.wait();
  ++g_transforms;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_weights.push_front({hash, want, packed});
  g_weight_bytes += packed.nbytes();
  while (g_weight_bytes > kCacheBytes && g_weights.size() > 1) {
    g_weight_bytes -= g_weights.back().packed.nbytes();
    g_weights.pop_back();
  }
  return packed;
}

bool winograd(const at::Tensor& x_in, const at::Tensor& w_in, const c10::optional<at::Tensor>& b, at::Tensor& out) {
  const int64_t n = x_in.size(0), c = x_in.size(1), h = x_in.size(2), wd = x_in.size(3), o = w_in.size(0);
  const bool channels_last = x_in.is_contiguous(at::MemoryFormat::ChannelsLast) && !x_in.is_contiguous();
  const at::Tensor x = channels_last ? x_in : x_in.contiguous();
  const at::Tensor w = w_in.is_contiguous() || w_in.is_contiguous(at::MemoryFormat::ChannelsLast) ? w_in : w_in.contiguous();
  const memory::dims src_dims{n, c, h, wd}, w_dims{o, c, 3, 3}, dst_dims{n, o, h, wd}, one{1, 1}, pad{1, 1};
  const auto f32 = memory::data_type::f32;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // from libtorch's allocator: reused memory, no page faults
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(
        {dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, memory::desc(src_dims, f32, tag::any),
         memory::desc(w_dims, f32, tag::any), memory::desc({o}, f32, tag::x), memory::desc(dst_dims, f32, tag::any),
         one, pad, pad},
        attr, cpu_engine());
  } catch (const dnnl::error&) {
    return false;  // no Winograd kernel for this CPU or shape
  }
  dnnl::stream stream(cpu_engine());
  const at::Tensor packed = packed_weights(w, pd.weights_desc(), stream);
  const tag user_tag = channels_last ? tag::nhwc : tag::nchw;
  memory user_src({src_dims, f32, user_tag}, cpu_engine(), x.data_ptr());
  at::Tensor src_buf, dst_buf;
  memory src = user_src;
  if (pd.src_desc() != user_src.get_desc()) {
    src_buf = at::empty({static_cast<int64_t>(pd.src_desc().get_size())}, x.options().dtype(at::kByte));
    src = memory(pd.src_desc(), cpu_engine(), src_buf.data_ptr());
    dnnl::reorder(user_src, src).execute(stream, user_src, src);
  }
  out = channels_last ? at::empty({n, o, h, wd}, x.options().memory_format(at::MemoryFormat::ChannelsLast))
                      : at::empty({n, o, h, wd}, x.options());
  memory user_dst({dst_dims, f32, user_tag}, cpu_engine(), out.data_ptr());
  memory dst = user_dst;
  const bool dst_reorder = pd.dst_desc() != user_dst.get_desc();
  if (dst_reorder) {
    dst_buf = at::empty({static_cast<int64_t>(pd.dst_desc().get_size())}, x.options().dtype(at::kByte));
    dst = memory(pd.dst_desc(), cpu_engine(), dst_buf.data_ptr());
  }
  at::Tensor bias = b.has_value() && b->defined() ? b->contiguous() : at::zeros({o}, x.options());
  memory bias_mem({{o}, f32, tag::x}, cpu_engine(), bias.data_ptr());
  memory weights(pd.weights_desc(), cpu_engine(), const_cast<void*>(packed.data_ptr()));
  at::Tensor scratch = at::empty({static_cast<int64_t>(pd.scratchpad_desc().get_size())}, x.options().dtype(at::kByte));
  memory scratchpad(pd.scratchpad_desc(), cpu_engine(), scratch.data_ptr());
  dnnl::convolution_forward(pd).execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias_mem},
                                                 {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
  if (dst_reorder) dnnl::reorder(dst, user_dst).execute(stream, dst, user_dst);
  stream.wait();
  return true;
}
#endif

}  // namespace

bool try_conv2d_winograd(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                         at::Tensor& out) {
#if MR_WINOGRAD
  if (!enabled()) return false;
  const bool has_bias = b.has_value() && b->defined();
  if (x.dim() != 4 || w.dim() != 4 || groups != 1 || !x.device().is_cpu() || !w.device().is_cpu() ||
      x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || w.size(2) != 3 || w.size(3) != 3 ||
      stride[0] != 1 || stride[1] != 1 || padding[0] != 1 || padding[1] != 1 || dilation[0] != 1 ||
      dilation[1] != 1 || x.size(1) != w.size(1) || x.numel() == 0 || w.size(1) % 16 != 0 || w.size(0) % 16 != 0 ||
      (has_bias && (!b->device().is_cpu() || b->scalar_type() != at::kFloat || b->numel() != w.size(0)))) {
    return false;
  }
  if (c10::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (has_bias && b->requires_grad()))) {
    return false;  // autograd needs libtorch's op
  }
  if (winograd(x, w, b, out)) {
    ++g_calls;
    return true;
  }
  ++g_fallbacks;
#endif
  return false;
}

}  // namespace mr

// Whether the Winograd path is compiled in (1) or not (0).
MR_API int mr_winograd_available() {
#if MR_WINOGRAD
  return 1;
#else
  return 0;
#endif
}
MR_API int mr_winograd_enabled() { return mr::guard([] { return mr::enabled() ? 1 : 0; }, -1); }
MR_API void mr_winograd_set_enabled(int on) {
  mr::guard([&] { mr::g_enabled.store(on != 0 ? 1 : 0); return 0; }, 0);
}
// stats[0] = convolutions computed with Winograd, stats[1] = eligible ones oneDNN had no Winograd kernel for,
// stats[2] = weight transforms (cache misses), stats[3] = bytes of transformed weights cached.
MR_API int mr_winograd_stats(int64_t* stats) {
  return mr::run([&] {
    stats[0] = mr::g_calls.load();
    stats[1] = mr::g_fallbacks.load();
    stats[2] = mr::g_transforms.load();
#if MR_WINOGRAD
    std::lock_guard<std::mutex> lock(mr::g_mutex);
    stats[3] = static_cast<int64_t>(mr::g_weight_bytes);
#else
    stats[3] = 0;
#endif
  });
}
