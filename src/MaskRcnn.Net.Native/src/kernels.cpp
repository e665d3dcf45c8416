// Detection kernels of MaskRcnn.Net: non-maximum suppression, RoIAlign and RoIPool.
//
// The CPU kernels reproduce torchvision 0.14's numerical rules (order of operations included, so float32 results
// agree bit for bit or to the last ulp); the code is this project's own. RoIAlign and RoIPool take part in autograd
// through custom torch::autograd::Function classes whose backward passes call the backward kernels below. Tensors on
// other devices take device-agnostic paths: RoIAlign is rebuilt from ATen tensor operations (autograd
// differentiates those), NMS and RoIPool run their CPU kernels on a host copy.
#include "mr_common.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <limits>
#include <type_traits>

#include <sys/mman.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace mr;

namespace {

// ---- helpers -------------------------------------------------------------------------------------------------

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

std::string shape_str(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

bool kernel_dtype(const at::Tensor& t) { return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble; }

// ---- NMS -----------------------------------------------------------------------------------------------------

// Greedy NMS over boxes visited in order of decreasing score (stable sort: equal scores keep their input order).
// A box is suppressed by an earlier kept box when their IoU is strictly greater than the threshold; areas use
// (x2 - x1) * (y2 - y1) with no +1 and IoU is computed in the element type, exactly as torchvision's CPU kernel.
// Speed: boxes are gathered once into score-ordered coordinate arrays, and the suppression pass over the
// remaining boxes is branch-free so the compiler vectorises it.
template <typename T>
at::Tensor nms_cpu_typed(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  const int64_t n = boxes.size(0);
  auto order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  const int64_t* order = order_t.data_ptr<int64_t>();
  auto b = boxes.contiguous();
  const T* p = b.data_ptr<T>();
  std::vector<T> x1(static_cast<size_t>(n)), y1(x1.size()), x2(x1.size()), y2(x1.size()), area(x1.size());
  for (int64_t k = 0; k < n; ++k) {
    const T* q = p + 4 * order[k];
    x1[k] = q[0]; y1[k] = q[1]; x2[k] = q[2]; y2[k] = q[3];
    area[k] = (q[2] - q[0]) * (q[3] - q[1]);
  }
  // For a value v of type T, v > iou_threshold (compared in double) <=> v > thr where thr is the largest T <= the
  // threshold; comparing in T keeps the inner loop in one vector width.
  T thr = static_cast<T>(iou_threshold);
  if (static_cast<double>(thr) > iou_threshold) thr = std::nextafter(thr, -std::numeric_limits<T>::infinity());
  std::vector<uint8_t> dead(static_cast<size_t>(n), 0);
  auto keep_t = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  int64_t* keep = keep_t.data_ptr<int64_t>();
  int64_t kept = 0;
  const T zero = 0;
  T* X1 = x1.data(); T* Y1 = y1.data(); T* X2 = x2.data(); T* Y2 = y2.data(); T* A = area.data();
  uint8_t* D = dead.data();
  for (int64_t a = 0; a < n; ++a) {
    if (D[a]) continue;
    keep[kept++] = order[a];
    const T ax1 = X1[a], ay1 = Y1[a], ax2 = X2[a], ay2 = Y2[a], aarea = A[a];
    for (int64_t c = a + 1; c < n; ++c) {
      const T w = std::max(zero, std::min(ax2, X2[c]) - std::max(ax1, X1[c]));
      const T h = std::max(zero, std::min(ay2, Y2[c]) - std::max(ay1, Y1[c]));
      const T inter = w * h;
      const T iou = inter / (aarea + A[c] - inter);
      D[c] |= static_cast<uint8_t>(iou > thr);
    }
  }
  return keep_t.narrow(0, 0, kept).clone();
}

at::Tensor nms_any(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  require(boxes.dim() == 2 && boxes.size(1) == 4, "boxes must have shape [N, 4], got " + shape_str(boxes));
  require(scores.dim() == 1 && scores.size(0) == boxes.size(0),
          "scores must have shape [" + std::to_string(boxes.size(0)) + "], got " + shape_str(scores));
  require(boxes.scalar_type() == scores.scalar_type(), "boxes and scores must have the same dtype");
  require(kernel_dtype(boxes), "nms supports float32 and float64 boxes");
  if (!boxes.device().is_cpu()) {
    // Device-agnostic fallback: the greedy pass is sequential, so run it on a host copy.
    auto keep = nms_any(boxes.detach().to(at::kCPU), scores.detach().to(at::kCPU), iou_threshold);
    return keep.to(boxes.device());
  }
  at::NoGradGuard no_grad;
  if (boxes.size(0) == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  auto b = boxes.detach();
  auto s = scores.detach();
  return boxes.scalar_type() == at::kFloat ? nms_cpu_typed<float>(b, s, iou_threshold)
                                           : nms_cpu_typed<double>(b, s, iou_threshold);
}

// Class-aware NMS with torchvision's strategy choice: small inputs shift each class's boxes by
// class * (max coordinate + 1) so classes never overlap and run one NMS; large ones run NMS per class and merge.
at::Tensor batched_nms_any(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& classes,
                           double iou_threshold) {
  require(boxes.dim() == 2 && boxes.size(1) == 4, "boxes must have shape [N, 4], got " + shape_str(boxes));
  require(scores.dim() == 1 && scores.size(0) == boxes.size(0),
          "scores must have shape [" + std::to_string(boxes.size(0)) + "], got " + shape_str(scores));
  require(classes.dim() == 1 && classes.size(0) == boxes.size(0),
          "class ids must have shape [" + std::to_string(boxes.size(0)) + "], got " + shape_str(classes));
  require(classes.device() == boxes.device(), "class ids and boxes must be on the same device");
  at::NoGradGuard no_grad;
  auto b = boxes.detach();
  auto s = scores.detach();
  const int64_t limit = b.device().is_cpu() ? 4000 : 20000;
  if (b.numel() > limit) {
    auto keep_mask = at::zeros_like(s, s.options().dtype(at::kBool));
    auto ids = std::get<0>(at::_unique2(classes, /*sorted=*/true, false, false));
    for (int64_t k = 0; k < ids.size(0); ++k) {
      auto members = at::nonzero(classes == ids[k]).select(1, 0);
      auto kept = nms_any(b.index_select(0, members), s.index_select(0, members), iou_threshold);
      keep_mask.index_put_({members.index_select(0, kept)}, true);
    }
    auto keep = at::nonzero(keep_mask).select(1, 0);
    auto order = std::get<1>(s.index_select(0, keep).sort(/*dim=*/0, /*descending=*/true));
    return keep.index_select(0, order);
  }
  if (b.numel() == 0) return at::empty({0}, b.options().dtype(at::kLong));
  auto max_coordinate = b.max();
  auto offsets = classes.to(b) * (max_coordinate + at::scalar_tensor(1, at::kLong).to(b));
  return nms_any(b + offsets.unsqueeze(1), s, iou_threshold);
}

// ---- RoIAlign ------------------------------------------------------------------------------------------------

// Where a RoI lies on the feature map and how its bins are sampled (shared by forward and backward).
template <typename T>
struct RoiGeometry {
  int64_t batch;
  T start_h, start_w, bin_h, bin_w;
  int64_t grid_h, grid_w;

  RoiGeometry(const T* roi, T scale, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
    batch = static_cast<int64_t>(roi[0]);
    const T offset = aligned ? static_cast<T>(0.5) : static_cast<T>(0);
    start_w = roi[1] * scale - offset;
    start_h = roi[2] * scale - offset;
    const T end_w = roi[3] * scale - offset;
    const T end_h = roi[4] * scale - offset;
    T width = end_w - start_w;
    T height = end_h - start_h;
    if (!aligned) {
      // Legacy mode: degenerate RoIs count as 1x1.
      width = std::max(width, static_cast<T>(1));
      height = std::max(height, static_cast<T>(1));
    }
    bin_h = height / static_cast<T>(pooled_h);
    bin_w = width / static_cast<T>(pooled_w);
    grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(std::ceil(height / static_cast<T>(pooled_h)));
    grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(std::ceil(width / static_cast<T>(pooled_w)));
  }
};

// One bilinear sample: four pixel offsets inside an H*W plane and their weights (all zero outside the map).
template <typename T>
struct Tap {
  int64_t i1, i2, i3, i4;
  T w1, w2, w3, w4;
  bool valid;  // false for points off the map: the forward pass reads pixel 0 with zero weights, backward skips
};

// Bilinear taps at (y, x). Points more than one pixel outside the map contribute nothing; points within that
// margin are clamped onto the border, and the last row/column interpolates with itself.
template <typename T>
Tap<T> bilinear_tap(T y, T x, int64_t height, int64_t width) {
  Tap<T> t{0, 0, 0, 0, 0, 0, 0, 0, false};
  if (!(y >= -1.0 && y <= height && x >= -1.0 && x <= width)) return t;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int64_t y0 = static_cast<int64_t>(y), x0 = static_cast<int64_t>(x), y1, x1;
  if (y0 >= height - 1) {
    y0 = y1 = height - 1;
    y = static_cast<T>(y0);
  } else {
    y1 = y0 + 1;
  }
  if (x0 >= width - 1) {
    x0 = x1 = width - 1;
    x = static_cast<T>(x0);
  } else {
    x1 = x0 + 1;
  }
  const T ly = y - y0, lx = x - x0;
  const T hy = 1. - ly, hx = 1. - lx;
  t.i1 = y0 * width + x0;
  t.i2 = y0 * width + x1;
  t.i3 = y1 * width + x0;
  t.i4 = y1 * width + x1;
  t.w1 = hy * hx;
  t.w2 = hy * lx;
  t.w3 = ly * hx;
  t.w4 = ly * lx;
  t.valid = true;
  return t;
}

// The taps of every sample point of a RoI, ordered (ph, pw, iy, ix).
template <typename T>
void roi_taps(const RoiGeometry<T>& g, int64_t pooled_h, int64_t pooled_w, int64_t height, int64_t width,
              std::vector<Tap<T>>& taps) {
  taps.clear();
  taps.reserve(static_cast<size_t>(pooled_h * pooled_w * std::max<int64_t>(g.grid_h * g.grid_w, 0)));
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        const T y = g.start_h + ph * g.bin_h + static_cast<T>(iy + .5f) * g.bin_h / static_cast<T>(g.grid_h);
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          const T x = g.start_w + pw * g.bin_w + static_cast<T>(ix + .5f) * g.bin_w / static_cast<T>(g.grid_w);
          taps.push_back(bilinear_tap<T>(y, x, height, width));
        }
      }
    }
  }
}

// Validates the RoI table against the input: finite coordinates and batch indices in [0, batch).
void check_rois(const at::Tensor& rois, int64_t batch) {
  if (rois.size(0) == 0) return;
  auto r = rois.detach();
  require(at::isfinite(r).all().item<bool>(), "rois contain non-finite values");
  auto idx = r.select(1, 0);
  require((idx >= 0).logical_and(idx < static_cast<double>(batch)).all().item<bool>(),
          "rois batch indices must lie in [0, " + std::to_string(batch) + ")");
}

// ---- RoIAlign CPU kernels ------------------------------------------------------------------------------------

// The hot loops are compiled for AVX-512, AVX2 and baseline x86-64, and the loader picks the widest one the CPU
// runs (function multi-versioning). kernels.cpp is compiled with -ffp-contract=off, so no clone fuses a multiply
// and an add: every clone rounds exactly like torchvision's scalar loops.
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define MR_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef MR_SIMD
#define MR_SIMD
#endif
#define MR_INLINE inline __attribute__((always_inline))

// 1/n when n is a power of two (x / n and x * (1/n) are then the same correctly rounded value), 0 otherwise.
template <typename T>
T exact_reciprocal(int64_t n) {
  return (n > 0 && (n & (n - 1)) == 0) ? static_cast<T>(1) / static_cast<T>(n) : static_cast<T>(0);
}

// a[c] += w1 * p1[c] + w2 * p2[c] + w3 * p3[c] + w4 * p4[c]: one bilinear sample of `n` channels-last values, in
// torchvision's order of operations.
template <typename T>
MR_INLINE void add_sample(T* __restrict a, const T* __restrict p1, const T* __restrict p2, const T* __restrict p3,
                          const T* __restrict p4, T w1, T w2, T w3, T w4, int64_t n) {
  for (int64_t c = 0; c < n; ++c) a[c] += w1 * p1[c] + w2 * p2[c] + w3 * p3[c] + w4 * p4[c];
}

// One RoI from a channels-last map `base` ([H, W, C] of its image): every bin accumulates its samples over the
// channels, a register-sized block at a time, divides by the sample count into `acc` ([bins, C] scratch), and the
// block is transposed into the RoI's output [C, bins].
template <typename T>
MR_INLINE void forward_roi_cl_body(const T* base, int64_t channels, const Tap<T>* tap, int64_t bins, int64_t per_bin,
                                   T count, T* __restrict acc, T* __restrict out) {
  // Channels in register-sized blocks: a block's running sums stay in registers across the bin's samples.
  constexpr int64_t kBlock = 64 / sizeof(T) * 4;
  for (int64_t b = 0; b < bins; ++b, tap += per_bin) {
    for (int64_t c0 = 0; c0 < channels; c0 += kBlock) {
      const int64_t n = std::min(kBlock, channels - c0);
      T a[kBlock];
      for (int64_t c = 0; c < kBlock; ++c) a[c] = 0;
      for (int64_t s = 0; s < per_bin; ++s) {
        const Tap<T>& t = tap[s];
        if (n == kBlock) {
          add_sample<T>(a, base + t.i1 * channels + c0, base + t.i2 * channels + c0, base + t.i3 * channels + c0,
                        base + t.i4 * channels + c0, t.w1, t.w2, t.w3, t.w4, kBlock);
        } else {
          add_sample<T>(a, base + t.i1 * channels + c0, base + t.i2 * channels + c0, base + t.i3 * channels + c0,
                        base + t.i4 * channels + c0, t.w1, t.w2, t.w3, t.w4, n);
        }
      }
      T* __restrict dst = acc + b * channels + c0;
      for (int64_t c = 0; c < n; ++c) dst[c] = a[c] / count;
    }
  }
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t b = 0; b < bins; ++b) out[c * bins + b] = acc[b * channels + c];
  }
}

MR_SIMD void forward_roi_cl(const float* base, int64_t channels, const Tap<float>* taps, int64_t bins,
                            int64_t per_bin, float count, float* acc, float* out) {
  forward_roi_cl_body<float>(base, channels, taps, bins, per_bin, count, acc, out);
}

MR_SIMD void forward_roi_cl(const double* base, int64_t channels, const Tap<double>* taps, int64_t bins,
                            int64_t per_bin, double count, double* acc, double* out) {
  forward_roi_cl_body<double>(base, channels, taps, bins, per_bin, count, acc, out);
}

// One RoI from a planar map `base` ([C, H, W] of its image), channel by channel (cheaper than a transposed copy
// when few RoIs read the map).
template <typename T>
void forward_roi_planar(const T* base, int64_t plane, int64_t channels, const Tap<T>* taps, int64_t bins,
                        int64_t per_bin, T count, T* out) {
  for (int64_t c = 0; c < channels; ++c) {
    const T* src = base + c * plane;
    T* dst = out + c * bins;
    const Tap<T>* tap = taps;
    for (int64_t b = 0; b < bins; ++b) {
      T acc = 0;
      for (int64_t s = 0; s < per_bin; ++s, ++tap) {
        acc += tap->w1 * src[tap->i1] + tap->w2 * src[tap->i2] + tap->w3 * src[tap->i3] + tap->w4 * src[tap->i4];
      }
      dst[b] = acc / count;
    }
  }
}

// A fresh tensor for a large result or scratch buffer, its memory advised for transparent huge pages before the
// first write: the kernels fill tens of megabytes per call, and faulting them in 4 KiB at a time cost as much as
// the arithmetic (the untouched pages of a new allocation are only mapped on first write). Advice only: where
// huge pages are unavailable nothing changes.
at::Tensor empty_for_fill(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto t = at::empty(sizes, options);
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + static_cast<uintptr_t>(t.nbytes());
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = end & ~(kHuge - 1);
  if (t.device().is_cpu() && hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
  return t;
}

// dst[j * dst_stride + i] = src[i * src_stride + j] for a rows x cols block. Full 16 x 16 float blocks use AVX-512
// registers when the CPU has them (16 row loads, 64 shuffles, 16 row stores); other blocks copy element by element.
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target)
#define MR_HAS_AVX512_TRANSPOSE 1
// GCC 12's unpack intrinsics read an "undefined" placeholder register, which -Wuninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) void transpose16_avx512(const float* src, int64_t src_stride, float* dst,
                                                           int64_t dst_stride) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
      t[8 * i + j + 4] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
    }
  }
  for (int i = 0; i < 8; ++i) {
    _mm512_storeu_ps(dst + i * dst_stride, _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88));
    _mm512_storeu_ps(dst + (i + 8) * dst_stride, _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd));
  }
}
#pragma GCC diagnostic pop
#endif
#endif

template <typename T>
void transpose_block(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t cols,
                     bool avx512) {
#ifdef MR_HAS_AVX512_TRANSPOSE
  if constexpr (std::is_same_v<T, float>) {
    if (avx512 && rows == 16 && cols == 16) {
      transpose16_avx512(src, src_stride, dst, dst_stride);
      return;
    }
  }
#endif
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
  }
}

bool cpu_has_avx512f() {
#ifdef MR_HAS_AVX512_TRANSPOSE
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

// Transposes each of `batch` contiguous rows x cols matrices into a new cols x rows one: [N, C, H*W] <-> [N, H*W, C].
// Threads take column strips 16 wide; a strip reads one cache line of every row and writes whole output rows.
template <typename T>
at::Tensor transposed_planes(const at::Tensor& src_t, at::IntArrayRef out_shape, int64_t batch, int64_t rows,
                             int64_t cols) {
  auto out = empty_for_fill(out_shape, src_t.options());
  constexpr int64_t kB = 16;
  const int64_t strips = (cols + kB - 1) / kB;
  const T* src = src_t.data_ptr<T>();
  T* dst = out.data_ptr<T>();
  const bool avx512 = cpu_has_avx512f();
  at::parallel_for(0, batch * strips, 4, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t n = k / strips, s0 = (k % strips) * kB, sn = std::min(kB, cols - s0);
      const T* from = src + n * rows * cols;
      T* to = dst + n * rows * cols;
      for (int64_t r0 = 0; r0 < rows; r0 += kB) {
        transpose_block<T>(from + r0 * cols + s0, cols, to + s0 * rows + r0, rows, std::min(kB, rows - r0), sn,
                           avx512);
      }
    }
  });
  return out;
}

// [N, C, H, W] -> a contiguous [N, H, W, C] copy.
template <typename T>
at::Tensor to_nhwc(const at::Tensor& input_nchw) {
  auto in = input_nchw.contiguous();
  const int64_t n = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3);
  return transposed_planes<T>(in, {n, h, w, c}, n, c, h * w);
}

// Contiguous [N, H, W, C] -> a contiguous [N, C, H, W] copy.
template <typename T>
at::Tensor to_nchw(const at::Tensor& nhwc) {
  const int64_t n = nhwc.size(0), h = nhwc.size(1), w = nhwc.size(2), c = nhwc.size(3);
  return transposed_planes<T>(nhwc, {n, c, h, w}, n, h * w, c);
}

// One feature map as the kernels read it: planar [N, C, H, W] or channels-last [N, H, W, C] data, and its scale.
template <typename T>
struct LevelView {
  const T* data = nullptr;
  int64_t height = 0, width = 0;
  T scale = 0;
  bool channels_last = false;
  at::Tensor owner;  // keeps the (possibly transposed) data alive
};

// Channels-last pays off once the RoIs read more values than a transposed copy of the input costs to make:
// estimate the taps (4 reads per sample point) against twice the input's spatial size. A channels-last input is
// read in place (no copy either way).
template <typename T>
LevelView<T> make_level(const at::Tensor& input, double scale, int64_t rois_here, int64_t bins, int64_t sampling_ratio) {
  LevelView<T> v;
  v.height = input.size(2);
  v.width = input.size(3);
  v.scale = static_cast<T>(scale);
  if (rois_here == 0) return v;
  const int64_t grid = sampling_ratio > 0 ? sampling_ratio * sampling_ratio : 4;
  const bool given_channels_last = input.is_contiguous(at::MemoryFormat::ChannelsLast) && !input.is_contiguous();
  v.channels_last = given_channels_last ||
                    (input.size(1) >= 8 && rois_here * bins * grid * 4 > 2 * input.size(2) * input.size(3));
  if (v.channels_last) {
    v.owner = given_channels_last ? input.permute({0, 2, 3, 1}) : to_nhwc<T>(input);
  } else {
    v.owner = input.contiguous();
  }
  v.data = v.owner.template data_ptr<T>();
  return v;
}

// RoIAlign forward of every RoI on its level (`level_of[n]`, or level 0 when null), written straight into its
// slice of `out` ([K, C, pooled_h, pooled_w], every element written). Parallel over RoIs.
template <typename T>
void pool_rois(const std::vector<LevelView<T>>& levels, const int64_t* level_of, const T* rp, int64_t num_rois,
               int64_t channels, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned, T* out) {
  const int64_t bins = pooled_h * pooled_w;
  auto pool_one = [&](int64_t n, std::vector<Tap<T>>& taps, std::vector<T>& acc) {
    const LevelView<T>& lv = levels[level_of ? static_cast<size_t>(level_of[n]) : 0];
    RoiGeometry<T> g(rp + 5 * n, lv.scale, pooled_h, pooled_w, sampling_ratio, aligned);
    roi_taps<T>(g, pooled_h, pooled_w, lv.height, lv.width, taps);
    const int64_t per_bin = std::max<int64_t>(g.grid_h * g.grid_w, 0);
    const T count = static_cast<T>(std::max<int64_t>(g.grid_h * g.grid_w, 1));
    const int64_t image = g.batch * channels * lv.height * lv.width;
    T* dst = out + n * channels * bins;
    if (lv.channels_last) {
      acc.resize(static_cast<size_t>(bins * channels));
      forward_roi_cl(lv.data + image, channels, taps.data(), bins, per_bin, count, acc.data(), dst);
    } else {
      forward_roi_planar<T>(lv.data + image, lv.height * lv.width, channels, taps.data(), bins, per_bin, count, dst);
    }
  };
  // Threads take small chunks of RoIs from a shared counter rather than one fixed share each: RoIs on different
  // levels or layouts cost differently, and on a shared machine one core may run slower than the other.
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t chunk = std::clamp<int64_t>(num_rois / (threads * 16), 1, 32);
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    std::vector<Tap<T>> taps;
    std::vector<T> acc;
    for (int64_t begin = next.fetch_add(chunk); begin < num_rois; begin = next.fetch_add(chunk)) {
      for (int64_t n = begin; n < std::min(num_rois, begin + chunk); ++n) pool_one(n, taps, acc);
    }
  });
}

at::Tensor roi_align_forward_cpu(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                                 double scale, int64_t sampling_ratio, bool aligned) {
  auto output = empty_for_fill({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  if (output.numel() == 0) return output.zero_();
  auto r = rois.contiguous();
  const int64_t k = rois.size(0), c = input.size(1), bins = pooled_h * pooled_w;
  if (input.scalar_type() == at::kFloat) {
    std::vector<LevelView<float>> levels{make_level<float>(input, scale, k, bins, sampling_ratio)};
    pool_rois<float>(levels, nullptr, r.data_ptr<float>(), k, c, pooled_h, pooled_w, sampling_ratio, aligned,
                     output.data_ptr<float>());
  } else {
    std::vector<LevelView<double>> levels{make_level<double>(input, scale, k, bins, sampling_ratio)};
    pool_rois<double>(levels, nullptr, r.data_ptr<double>(), k, c, pooled_h, pooled_w, sampling_ratio, aligned,
                      output.data_ptr<double>());
  }
  return output;
}

// Scatters the output gradient back through the bilinear taps. Parallel over channels: every thread owns whole
// channel planes and visits RoIs, bins and samples in the same order as a serial pass, so sums are deterministic.
// Each tap adds go * w / count (torchvision's expression); when count is a power of two the division is an exact
// multiplication by 1/count.
template <typename T>
void roi_align_backward_typed(const at::Tensor& grad, const at::Tensor& rois, at::Tensor& grad_input, double scale_d,
                              int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  const int64_t num_rois = rois.size(0), channels = grad_input.size(1), height = grad_input.size(2),
                width = grad_input.size(3);
  const T* gp = grad.data_ptr<T>();
  const T* rp = rois.data_ptr<T>();
  T* gi = grad_input.data_ptr<T>();
  const T scale = static_cast<T>(scale_d);
  const int64_t plane = height * width, bins = pooled_h * pooled_w;
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<Tap<T>> taps;
    for (int64_t n = 0; n < num_rois; ++n) {
      RoiGeometry<T> g(rp + 5 * n, scale, pooled_h, pooled_w, sampling_ratio, aligned);
      roi_taps<T>(g, pooled_h, pooled_w, height, width, taps);
      const int64_t per_bin = std::max<int64_t>(g.grid_h * g.grid_w, 0);
      if (per_bin == 0) continue;
      const T count = static_cast<T>(g.grid_h * g.grid_w);
      const T inv = exact_reciprocal<T>(g.grid_h * g.grid_w);
      for (int64_t c = begin; c < end; ++c) {
        T* dst = gi + (g.batch * channels + c) * plane;
        const T* src = gp + (n * channels + c) * bins;
        const Tap<T>* tap = taps.data();
        for (int64_t b = 0; b < bins; ++b) {
          const T go = src[b];
          if (inv != 0) {
            for (int64_t s = 0; s < per_bin; ++s, ++tap) {
              if (!tap->valid) continue;
              dst[tap->i1] += go * tap->w1 * inv;
              dst[tap->i2] += go * tap->w2 * inv;
              dst[tap->i3] += go * tap->w3 * inv;
              dst[tap->i4] += go * tap->w4 * inv;
            }
          } else {
            for (int64_t s = 0; s < per_bin; ++s, ++tap) {
              if (!tap->valid) continue;
              dst[tap->i1] += go * tap->w1 / count;
              dst[tap->i2] += go * tap->w2 / count;
              dst[tap->i3] += go * tap->w3 / count;
              dst[tap->i4] += go * tap->w4 / count;
            }
          }
        }
      }
    }
  });
}

// ---- RoIAlign backward, channels-last ----

// A bilinear tap of the backward pass with 32-bit pixel indices; i1 < 0 marks a sample off the map (it adds nothing).
template <typename T>
struct PackedTap {
  int32_t i1, i2, i3, i4;
  T w1, w2, w3, w4;
};

// Where a RoI's taps start in the packed table, how many samples each bin has, and its sample-count divisor.
template <typename T>
struct RoiTaps {
  int64_t offset, per_bin, batch;
  T count, inv;  // inv = exact 1/count when count is a power of two, else 0 (divide)
};

// g[c] = go[c] * w (exactly torchvision's go * w / count, as a multiplication when inv != 0), added at dst[c].
template <typename T>
MR_INLINE void scatter_tap(T* __restrict dst, const T* __restrict go, T w, T count, T inv, int64_t n) {
  if (inv != 0) {
    for (int64_t c = 0; c < n; ++c) dst[c] += go[c] * w * inv;
  } else {
    for (int64_t c = 0; c < n; ++c) dst[c] += go[c] * w / count;
  }
}

// Scatters one RoI's output gradient (`go`: [bins, cb], this block's channels) into a channels-last gradient map
// `base` ([H, W, C] of the RoI's image, already offset to the block's first channel), visiting bins, samples and
// the four taps in torchvision's order.
template <typename T>
MR_INLINE void backward_roi_cl_body(T* base, int64_t channels, const PackedTap<T>* tap, const RoiTaps<T>& roi,
                                    int64_t bins, const T* go, int64_t cb) {
  for (int64_t b = 0; b < bins; ++b) {
    const T* g = go + b * cb;
    for (int64_t s = 0; s < roi.per_bin; ++s, ++tap) {
      if (tap->i1 < 0) continue;
      scatter_tap<T>(base + tap->i1 * channels, g, tap->w1, roi.count, roi.inv, cb);
      scatter_tap<T>(base + tap->i2 * channels, g, tap->w2, roi.count, roi.inv, cb);
      scatter_tap<T>(base + tap->i3 * channels, g, tap->w3, roi.count, roi.inv, cb);
      scatter_tap<T>(base + tap->i4 * channels, g, tap->w4, roi.count, roi.inv, cb);
    }
  }
}

MR_SIMD void backward_roi_cl(float* base, int64_t channels, const PackedTap<float>* tap, const RoiTaps<float>& roi,
                             int64_t bins, const float* go, int64_t cb) {
  backward_roi_cl_body<float>(base, channels, tap, roi, bins, go, cb);
}

MR_SIMD void backward_roi_cl(double* base, int64_t channels, const PackedTap<double>* tap, const RoiTaps<double>& roi,
                             int64_t bins, const double* go, int64_t cb) {
  backward_roi_cl_body<double>(base, channels, tap, roi, bins, go, cb);
}

// The backward pass into a channels-last gradient map, transposed to [N, C, H, W] at the end. RoIs are processed in
// batches whose taps (precomputed once, in parallel) fit a bounded table; within a batch, threads take blocks of
// channels from a shared counter and each scatters every RoI of the batch into its channels, in RoI order, so
// every gradient element receives its contributions in the same order as torchvision's serial loop.
template <typename T>
at::Tensor roi_align_backward_channels_last(const at::Tensor& grad, const at::Tensor& rois, at::IntArrayRef shape,
                                            double scale_d, int64_t pooled_h, int64_t pooled_w,
                                            int64_t sampling_ratio, bool aligned) {
  const int64_t num_rois = rois.size(0), batch = shape[0], channels = shape[1], height = shape[2],
                width = shape[3], bins = pooled_h * pooled_w;
  auto gi = empty_for_fill({batch, height, width, channels}, grad.options());
  gi.zero_();
  const T* gp = grad.data_ptr<T>();
  const T* rp = rois.data_ptr<T>();
  T* gbase = gi.data_ptr<T>();
  const T scale = static_cast<T>(scale_d);
  constexpr int64_t kMaxTaps = int64_t{1} << 20;  // 32 MiB of float taps per batch of RoIs
  constexpr int64_t kChannelBlock = 32;
  const int64_t channel_blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  std::vector<RoiTaps<T>> meta(static_cast<size_t>(num_rois));
  std::vector<PackedTap<T>> table;
  for (int64_t n0 = 0; n0 < num_rois;) {
    // Choose the batch [n0, n1) and lay out its taps.
    int64_t n1 = n0, total = 0;
    while (n1 < num_rois) {
      RoiGeometry<T> g(rp + 5 * n1, scale, pooled_h, pooled_w, sampling_ratio, aligned);
      const int64_t per_bin = std::max<int64_t>(g.grid_h * g.grid_w, 0);
      if (n1 > n0 && total + per_bin * bins > kMaxTaps) break;
      meta[n1] = RoiTaps<T>{total, per_bin, g.batch, static_cast<T>(g.grid_h * g.grid_w),
                            exact_reciprocal<T>(g.grid_h * g.grid_w)};
      total += per_bin * bins;
      ++n1;
    }
    table.resize(static_cast<size_t>(total));
    at::parallel_for(n0, n1, 1, [&](int64_t begin, int64_t end) {
      std::vector<Tap<T>> taps;
      for (int64_t n = begin; n < end; ++n) {
        RoiGeometry<T> g(rp + 5 * n, scale, pooled_h, pooled_w, sampling_ratio, aligned);
        roi_taps<T>(g, pooled_h, pooled_w, height, width, taps);
        PackedTap<T>* dst = table.data() + (meta[n].offset - meta[n0].offset);
        for (const Tap<T>& t : taps) {
          *dst++ = t.valid ? PackedTap<T>{static_cast<int32_t>(t.i1), static_cast<int32_t>(t.i2),
                                          static_cast<int32_t>(t.i3), static_cast<int32_t>(t.i4), t.w1, t.w2, t.w3,
                                          t.w4}
                           : PackedTap<T>{-1, -1, -1, -1, 0, 0, 0, 0};
        }
      }
    });
    const int64_t first = meta[n0].offset;
    std::atomic<int64_t> next{0};
    const int64_t threads = std::min<int64_t>(std::max<int64_t>(1, at::get_num_threads()), channel_blocks);
    at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
      std::vector<T> go(static_cast<size_t>(bins * kChannelBlock));
      for (int64_t k = next.fetch_add(1); k < channel_blocks; k = next.fetch_add(1)) {
        const int64_t c0 = k * kChannelBlock, cb = std::min(channels, c0 + kChannelBlock) - c0;
        for (int64_t n = n0; n < n1; ++n) {
          const RoiTaps<T>& roi = meta[n];
          if (roi.per_bin == 0) continue;
          // This block's output gradient of RoI n, [C, bins] -> [bins, cb].
          const T* src = gp + (n * channels + c0) * bins;
          for (int64_t c = 0; c < cb; ++c) {
            for (int64_t b = 0; b < bins; ++b) go[b * cb + c] = src[c * bins + b];
          }
          backward_roi_cl(gbase + roi.batch * height * width * channels + c0, channels,
                          table.data() + (roi.offset - first), roi, bins, go.data(), cb);
        }
      }
    });
    n0 = n1;
  }
  return to_nchw<T>(gi);
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, at::IntArrayRef input_shape,
                                  int64_t pooled_h, int64_t pooled_w, double scale, int64_t sampling_ratio,
                                  bool aligned) {
  if (grad.numel() == 0) return at::zeros(input_shape, grad.options());
  auto g = grad.contiguous();
  auto r = rois.contiguous();
  // Channels-last under the same condition as the forward pass (the RoIs touch more values than the map holds),
  // and while pixel indices fit 32 bits.
  const int64_t grid = sampling_ratio > 0 ? sampling_ratio * sampling_ratio : 4;
  const int64_t plane = input_shape[2] * input_shape[3];
  if (input_shape[1] >= 8 && plane * input_shape[0] < (int64_t{1} << 31) &&
      rois.size(0) * pooled_h * pooled_w * grid * 4 > 2 * plane) {
    return grad.scalar_type() == at::kFloat
               ? roi_align_backward_channels_last<float>(g, r, input_shape, scale, pooled_h, pooled_w, sampling_ratio,
                                                         aligned)
               : roi_align_backward_channels_last<double>(g, r, input_shape, scale, pooled_h, pooled_w,
                                                          sampling_ratio, aligned);
  }
  auto grad_input = at::zeros(input_shape, grad.options());
  if (grad.scalar_type() == at::kFloat)
    roi_align_backward_typed<float>(g, r, grad_input, scale, pooled_h, pooled_w, sampling_ratio, aligned);
  else
    roi_align_backward_typed<double>(g, r, grad_input, scale, pooled_h, pooled_w, sampling_ratio, aligned);
  return grad_input;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct RoIAlignFunction : public torch::autograd::Function<RoIAlignFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h,
                            int64_t pooled_w, double scale, int64_t sampling_ratio, bool aligned) {
    ctx->saved_data["pooled_h"] = pooled_h;
    ctx->saved_data["pooled_w"] = pooled_w;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["sampling_ratio"] = sampling_ratio;
    ctx->saved_data["aligned"] = aligned;
    ctx->saved_data["input_shape"] = input.sizes().vec();
    ctx->save_for_backward({rois});
    return roi_align_forward_cpu(input, rois, pooled_h, pooled_w, scale, sampling_ratio, aligned);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto rois = ctx->get_saved_variables()[0];
    auto shape = ctx->saved_data["input_shape"].toIntVector();
    auto grad_input = roi_align_backward_cpu(
        grads[0], rois, shape, ctx->saved_data["pooled_h"].toInt(), ctx->saved_data["pooled_w"].toInt(),
        ctx->saved_data["scale"].toDouble(), ctx->saved_data["sampling_ratio"].toInt(),
        ctx->saved_data["aligned"].toBool());
    return {grad_input, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Per-axis bilinear data of sample coordinates `c` on an axis of `size` pixels (tensor-op path).
struct AxisTaps {
  at::Tensor low, high, w_low, w_high;  // indices (int64) and weights (zero where the sample is off the map)
};

AxisTaps axis_taps(at::Tensor c, int64_t size) {
  auto valid = (c >= -1.0).logical_and(c <= static_cast<double>(size));
  // Off-map (or NaN, from an empty sample grid) coordinates get weight 0; park them at 0 so indices stay valid.
  c = at::where(valid, c, at::zeros({}, c.options())).clamp_min(0);
  auto low = c.floor().to(at::kLong);
  auto edge = low >= size - 1;
  auto last = at::full({}, size - 1, low.options());
  low = at::where(edge, last, low);
  auto high = at::where(edge, last, low + 1);
  c = at::where(edge, low.to(c.scalar_type()), c);
  auto frac = c - low.to(c.scalar_type());
  auto mask = valid.to(c.scalar_type());
  return {low, high, (1. - frac) * mask, frac * mask};
}

// RoIAlign from ATen tensor operations: works on any device and in any floating dtype; autograd differentiates
// it (the gathers scatter-add their gradients). Sample grids are padded to the largest grid among the RoIs and the
// padding is masked out, so adaptive sampling works per RoI.
at::Tensor roi_align_tensor_ops(const at::Tensor& input, const at::Tensor& rois_in, int64_t pooled_h, int64_t pooled_w,
                                double scale, int64_t sampling_ratio, bool aligned) {
  const int64_t num_rois = rois_in.size(0), height = input.size(2), width = input.size(3);
  auto rois = rois_in.detach();
  auto fopt = rois.options();
  auto batch = rois.select(1, 0).to(at::kLong);
  const double offset = aligned ? 0.5 : 0.0;
  auto start_w = rois.select(1, 1) * scale - offset;
  auto start_h = rois.select(1, 2) * scale - offset;
  auto roi_w = (rois.select(1, 3) * scale - offset) - start_w;
  auto roi_h = (rois.select(1, 4) * scale - offset) - start_h;
  if (!aligned) {
    roi_w = roi_w.clamp_min(1.0);
    roi_h = roi_h.clamp_min(1.0);
  }
  auto bin_h = roi_h / static_cast<double>(pooled_h);
  auto bin_w = roi_w / static_cast<double>(pooled_w);
  at::Tensor grid_h, grid_w;
  int64_t max_h, max_w;
  if (sampling_ratio > 0) {
    grid_h = at::full({num_rois}, sampling_ratio, fopt.dtype(at::kLong));
    grid_w = grid_h;
    max_h = max_w = sampling_ratio;
  } else {
    grid_h = at::ceil(roi_h / static_cast<double>(pooled_h)).to(at::kLong);
    grid_w = at::ceil(roi_w / static_cast<double>(pooled_w)).to(at::kLong);
    max_h = num_rois > 0 ? std::max<int64_t>(grid_h.max().item<int64_t>(), 1) : 1;
    max_w = num_rois > 0 ? std::max<int64_t>(grid_w.max().item<int64_t>(), 1) : 1;
  }
  auto count = (grid_h * grid_w).clamp_min(1).to(rois.scalar_type());

  // Sample coordinates: y [K, PH, GH] and x [K, PW, GW]; samples beyond a RoI's own grid are masked.
  auto coords = [&](const at::Tensor& start, const at::Tensor& bin, const at::Tensor& grid, int64_t pooled,
                    int64_t max_grid) {
    auto p = at::arange(pooled, fopt).view({1, pooled, 1});
    auto i = at::arange(max_grid, fopt).view({1, 1, max_grid});
    auto s = start.view({-1, 1, 1}), b = bin.view({-1, 1, 1});
    auto g = grid.view({-1, 1, 1});
    auto c = s + p * b + (i + 0.5) * b / g.to(rois.scalar_type());
    auto inside = (at::arange(max_grid, fopt.dtype(at::kLong)).view({1, 1, max_grid}) < g).to(rois.scalar_type());
    return std::make_pair(c, inside);
  };
  auto [ys, ymask] = coords(start_h, bin_h, grid_h, pooled_h, max_h);
  auto [xs, xmask] = coords(start_w, bin_w, grid_w, pooled_w, max_w);
  auto ty = axis_taps(ys, height);
  auto tx = axis_taps(xs, width);

  // Gather from a channels-last view: result [K, PH, GH, PW, GW, C].
  auto feature = input.permute({0, 2, 3, 1});
  auto bidx = batch.view({-1, 1, 1, 1, 1});
  auto out = at::Tensor();
  const at::Tensor* yi[2] = {&ty.low, &ty.high};
  const at::Tensor* yw[2] = {&ty.w_low, &ty.w_high};
  const at::Tensor* xi[2] = {&tx.low, &tx.high};
  const at::Tensor* xw[2] = {&tx.w_low, &tx.w_high};
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      auto values = feature.index({bidx, yi[a]->view({num_rois, pooled_h, max_h, 1, 1}),
                                   xi[b]->view({num_rois, 1, 1, pooled_w, max_w})});
      auto weight = ((*yw[a]) * ymask).view({num_rois, pooled_h, max_h, 1, 1, 1}) *
                    ((*xw[b]) * xmask).view({num_rois, 1, 1, pooled_w, max_w, 1});
      auto term = (values * weight.to(input.scalar_type())).sum(at::IntArrayRef{2, 4});
      out = out.defined() ? out + term : term;
    }
  }
  out = out / count.to(input.scalar_type()).view({-1, 1, 1, 1});
  return out.permute({0, 3, 1, 2}).contiguous();
}

// path: 0 = automatic (CPU kernel for float32/float64 CPU tensors, tensor ops otherwise), 1 = kernel, 2 = tensor ops.
at::Tensor roi_align_any(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                         double scale, int64_t sampling_ratio, bool aligned, int path) {
  require(input.dim() == 4, "input must have shape [N, C, H, W], got " + shape_str(input));
  require(rois.dim() == 2 && rois.size(1) == 5, "rois must have shape [K, 5], got " + shape_str(rois));
  require(input.scalar_type() == rois.scalar_type(), "input and rois must have the same dtype");
  require(input.device() == rois.device(), "input and rois must be on the same device");
  require(pooled_h > 0 && pooled_w > 0, "output size must be positive");
  const bool kernel_ok = input.device().is_cpu() && kernel_dtype(input);
  const bool use_kernel = path == 1 || (path == 0 && kernel_ok);
  if (use_kernel) {
    require(kernel_ok, "the RoIAlign kernel needs float32 or float64 CPU tensors");
    check_rois(rois, input.size(0));  // the kernel indexes memory with these values
    if (c10::GradMode::is_enabled() && input.requires_grad())
      return RoIAlignFunction::apply(input, rois.detach(), pooled_h, pooled_w, scale, sampling_ratio, aligned);
    at::NoGradGuard no_grad;
    return roi_align_forward_cpu(input.detach(), rois.detach(), pooled_h, pooled_w, scale, sampling_ratio, aligned);
  }
  return roi_align_tensor_ops(input, rois, pooled_h, pooled_w, scale, sampling_ratio, aligned);
}

// Multi-scale RoIAlign: RoI n is pooled from features[levels[n]] at scales[levels[n]] (torchvision's
// MultiScaleRoIAlign once the level of every RoI is known). Float32/float64 CPU maps without autograd run one fused
// kernel: each level that enough RoIs read is transposed to channels-last once, and every RoI, whatever its level,
// is pooled straight into its row of the output in one parallel pass. Otherwise (gradients wanted, other devices or
// dtypes) the levels are pooled one by one with roi_align_any and scattered into the output, which autograd
// differentiates.
at::Tensor multi_scale_roi_align_any(const std::vector<at::Tensor>& features, const std::vector<double>& scales,
                                     const at::Tensor& rois, const at::Tensor& levels, int64_t pooled_h,
                                     int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  require(!features.empty(), "at least one feature map is needed");
  require(scales.size() == features.size(), "one scale per feature map is needed");
  const at::Tensor& first = features[0];
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    const std::string name = "features[" + std::to_string(l) + "]";
    require(f.dim() == 4, name + " must have shape [N, C, H, W], got " + shape_str(f));
    require(f.size(0) == first.size(0) && f.size(1) == first.size(1),
            name + " has shape " + shape_str(f) + " but features[0] has " + shape_str(first) +
                " (batch size and channels must agree)");
    require(f.scalar_type() == first.scalar_type(), name + " has another dtype than features[0]");
    require(f.device() == first.device(), name + " is on another device than features[0]");
    require(std::isfinite(scales[l]) && scales[l] > 0, "scales[" + std::to_string(l) + "] must be positive");
  }
  require(rois.dim() == 2 && rois.size(1) == 5, "rois must have shape [K, 5], got " + shape_str(rois));
  require(rois.scalar_type() == first.scalar_type(), "rois and features must have the same dtype");
  require(rois.device() == first.device(), "rois and features must be on the same device");
  require(levels.dim() == 1 && levels.size(0) == rois.size(0),
          "levels must have shape [" + std::to_string(rois.size(0)) + "], got " + shape_str(levels));
  require(levels.scalar_type() == at::kLong, "levels must be int64");
  require(levels.device() == rois.device(), "levels and rois must be on the same device");
  require(pooled_h > 0 && pooled_w > 0, "output size must be positive");
  const int64_t num_rois = rois.size(0), channels = first.size(1), num_levels = static_cast<int64_t>(features.size());
  if (num_rois > 0) {
    auto range = at::aminmax(levels.detach());
    require(std::get<0>(range).item<int64_t>() >= 0 && std::get<1>(range).item<int64_t>() < num_levels,
            "levels must lie in [0, " + std::to_string(num_levels) + ")");
  }

  bool wants_grad = false;
  for (const auto& f : features) wants_grad = wants_grad || f.requires_grad();
  wants_grad = wants_grad && c10::GradMode::is_enabled();
  if (wants_grad || !first.device().is_cpu() || !kernel_dtype(first)) {
    auto out = at::zeros({num_rois, channels, pooled_h, pooled_w}, first.options());
    for (int64_t l = 0; l < num_levels; ++l) {
      auto idx = at::nonzero(levels == l).select(1, 0);
      if (idx.numel() == 0) continue;
      auto pooled = roi_align_any(features[l], rois.index_select(0, idx), pooled_h, pooled_w, scales[l],
                                  sampling_ratio, aligned, 0);
      out.index_put_({idx}, pooled);
    }
    return out;
  }

  at::NoGradGuard no_grad;
  if (num_rois == 0) return at::zeros({0, channels, pooled_h, pooled_w}, first.options());
  check_rois(rois, first.size(0));  // the kernel indexes memory with these values
  auto r = rois.detach().contiguous();
  auto lv = levels.detach().contiguous();
  const int64_t* level_of = lv.data_ptr<int64_t>();
  std::vector<int64_t> counts(static_cast<size_t>(num_levels), 0);
  for (int64_t n = 0; n < num_rois; ++n) ++counts[static_cast<size_t>(level_of[n])];
  auto output = empty_for_fill({num_rois, channels, pooled_h, pooled_w}, first.options());
  const int64_t bins = pooled_h * pooled_w;
  auto run = [&](auto zero) {
    using S = decltype(zero);
    std::vector<LevelView<S>> views;
    for (int64_t l = 0; l < num_levels; ++l)
      views.push_back(make_level<S>(features[l].detach(), scales[l], counts[l], bins, sampling_ratio));
    pool_rois<S>(views, level_of, r.data_ptr<S>(), num_rois, channels, pooled_h, pooled_w, sampling_ratio, aligned,
                 output.data_ptr<S>());
  };
  if (first.scalar_type() == at::kFloat)
    run(0.0f);
  else
    run(0.0);
  return output;
}

// ---- RoIPool -------------------------------------------------------------------------------------------------

template <typename T>
void roi_pool_forward_typed(const at::Tensor& input, const at::Tensor& rois, at::Tensor& output, at::Tensor& argmax,
                            double scale_d, int64_t pooled_h, int64_t pooled_w) {
  const int64_t num_rois = rois.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  const T* in = input.data_ptr<T>();
  const T* rp = rois.data_ptr<T>();
  T* out = output.data_ptr<T>();
  int64_t* arg = argmax.data_ptr<int64_t>();
  const T scale = static_cast<T>(scale_d);
  const int64_t plane = height * width, bins = pooled_h * pooled_w;
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const T* roi = rp + 5 * n;
      const int64_t batch = static_cast<int64_t>(roi[0]);
      // RoI corners snap to the nearest pixel (halves away from zero); the RoI spans whole pixels inclusively.
      const int64_t x0 = static_cast<int64_t>(std::round(roi[1] * scale));
      const int64_t y0 = static_cast<int64_t>(std::round(roi[2] * scale));
      const int64_t x1 = static_cast<int64_t>(std::round(roi[3] * scale));
      const int64_t y1 = static_cast<int64_t>(std::round(roi[4] * scale));
      const T bin_h = static_cast<T>(std::max<int64_t>(y1 - y0 + 1, 1)) / static_cast<T>(pooled_h);
      const T bin_w = static_cast<T>(std::max<int64_t>(x1 - x0 + 1, 1)) / static_cast<T>(pooled_w);
      for (int64_t ph = 0; ph < pooled_h; ++ph) {
        const int64_t h_lo = std::clamp<int64_t>(
            static_cast<int64_t>(std::floor(static_cast<T>(ph) * bin_h)) + y0, 0, height);
        const int64_t h_hi = std::clamp<int64_t>(
            static_cast<int64_t>(std::ceil(static_cast<T>(ph + 1) * bin_h)) + y0, 0, height);
        for (int64_t pw = 0; pw < pooled_w; ++pw) {
          const int64_t w_lo = std::clamp<int64_t>(
              static_cast<int64_t>(std::floor(static_cast<T>(pw) * bin_w)) + x0, 0, width);
          const int64_t w_hi = std::clamp<int64_t>(
              static_cast<int64_t>(std::ceil(static_cast<T>(pw + 1) * bin_w)) + x0, 0, width);
          const bool empty = h_hi <= h_lo || w_hi <= w_lo;
          for (int64_t c = 0; c < channels; ++c) {
            const T* src = in + (batch * channels + c) * plane;
            T best = empty ? static_cast<T>(0) : static_cast<T>(-FLT_MAX);
            int64_t where = -1;  // an empty bin passes no gradient
            for (int64_t h = h_lo; h < h_hi; ++h) {
              for (int64_t w = w_lo; w < w_hi; ++w) {
                const T v = src[h * width + w];
                if (v > best) {
                  best = v;
                  where = h * width + w;
                }
              }
            }
            const int64_t o = (n * channels + c) * bins + ph * pooled_w + pw;
            out[o] = best;
            arg[o] = where;
          }
        }
      }
    }
  });
}

template <typename T>
void roi_pool_backward_typed(const at::Tensor& grad, const at::Tensor& rois, const at::Tensor& argmax,
                             at::Tensor& grad_input) {
  const int64_t num_rois = rois.size(0), channels = grad_input.size(1),
                plane = grad_input.size(2) * grad_input.size(3), bins = grad.size(2) * grad.size(3);
  const T* gp = grad.data_ptr<T>();
  const T* rp = rois.data_ptr<T>();
  const int64_t* arg = argmax.data_ptr<int64_t>();
  T* gi = grad_input.data_ptr<T>();
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = 0; n < num_rois; ++n) {
      const int64_t batch = static_cast<int64_t>(rp[5 * n]);
      for (int64_t c = begin; c < end; ++c) {
        T* dst = gi + (batch * channels + c) * plane;
        const int64_t o = (n * channels + c) * bins;
        for (int64_t b = 0; b < bins; ++b) {
          if (arg[o + b] >= 0) dst[arg[o + b]] += gp[o + b];
        }
      }
    }
  });
}

std::pair<at::Tensor, at::Tensor> roi_pool_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                                       int64_t pooled_h, int64_t pooled_w, double scale) {
  auto output = at::zeros({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  auto argmax = at::full(output.sizes(), -1, input.options().dtype(at::kLong));
  if (output.numel() == 0) return {output, argmax};
  auto in = input.contiguous();
  auto r = rois.contiguous();
  if (input.scalar_type() == at::kFloat)
    roi_pool_forward_typed<float>(in, r, output, argmax, scale, pooled_h, pooled_w);
  else
    roi_pool_forward_typed<double>(in, r, output, argmax, scale, pooled_h, pooled_w);
  return {output, argmax};
}

struct RoIPoolFunction : public torch::autograd::Function<RoIPoolFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h,
                            int64_t pooled_w, double scale) {
    auto [output, argmax] = roi_pool_forward_cpu(input, rois, pooled_h, pooled_w, scale);
    ctx->saved_data["input_shape"] = input.sizes().vec();
    ctx->save_for_backward({rois, argmax});
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto shape = ctx->saved_data["input_shape"].toIntVector();
    auto grad_input = at::zeros(shape, grads[0].options());
    if (grads[0].numel() > 0) {
      auto g = grads[0].contiguous();
      auto r = saved[0].contiguous();
      if (g.scalar_type() == at::kFloat)
        roi_pool_backward_typed<float>(g, r, saved[1], grad_input);
      else
        roi_pool_backward_typed<double>(g, r, saved[1], grad_input);
    }
    return {grad_input, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor roi_pool_any(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_h, int64_t pooled_w,
                        double scale) {
  require(input.dim() == 4, "input must have shape [N, C, H, W], got " + shape_str(input));
  require(rois.dim() == 2 && rois.size(1) == 5, "rois must have shape [K, 5], got " + shape_str(rois));
  require(input.scalar_type() == rois.scalar_type(), "input and rois must have the same dtype");
  require(input.device() == rois.device(), "input and rois must be on the same device");
  require(kernel_dtype(input), "RoIPool supports float32 and float64 tensors");
  require(pooled_h > 0 && pooled_w > 0, "output size must be positive");
  if (!input.device().is_cpu()) {
    // Device-agnostic fallback: pool a host copy; the device moves are differentiable.
    auto out = roi_pool_any(input.to(at::kCPU), rois.detach().to(at::kCPU), pooled_h, pooled_w, scale);
    return out.to(input.device());
  }
  check_rois(rois, input.size(0));  // the kernel indexes memory with these values
  if (c10::GradMode::is_enabled() && input.requires_grad())
    return RoIPoolFunction::apply(input, rois.detach(), pooled_h, pooled_w, scale);
  at::NoGradGuard no_grad;
  return roi_pool_forward_cpu(input.detach(), rois.detach(), pooled_h, pooled_w, scale).first;
}

}  // namespace

// ---- exports -------------------------------------------------------------------------------------------------

MR_API mr_tensor mr_nms(mr_tensor boxes, mr_tensor scores, double iou_threshold) {
  return wrap([&] { return nms_any(T(boxes), T(scores), iou_threshold); });
}

MR_API mr_tensor mr_batched_nms(mr_tensor boxes, mr_tensor scores, mr_tensor classes, double iou_threshold) {
  return wrap([&] { return batched_nms_any(T(boxes), T(scores), T(classes), iou_threshold); });
}

MR_API mr_tensor mr_roi_align(mr_tensor input, mr_tensor rois, int64_t pooled_h, int64_t pooled_w, double scale,
                              int64_t sampling_ratio, int aligned, int path) {
  return wrap([&] {
    return roi_align_any(T(input), T(rois), pooled_h, pooled_w, scale, sampling_ratio, aligned != 0, path);
  });
}

// Multi-scale RoIAlign over `num_levels` feature maps (see multi_scale_roi_align_any); `levels` is int64 [K].
MR_API mr_tensor mr_multi_scale_roi_align(const mr_tensor* features, const double* scales, int num_levels,
                                          mr_tensor rois, mr_tensor levels, int64_t pooled_h, int64_t pooled_w,
                                          int64_t sampling_ratio, int aligned) {
  return wrap([&] {
    require(num_levels > 0 && features != nullptr && scales != nullptr, "at least one feature map is needed");
    std::vector<at::Tensor> maps;
    for (int l = 0; l < num_levels; ++l) maps.push_back(T(features[l]));
    std::vector<double> s(scales, scales + num_levels);
    return multi_scale_roi_align_any(maps, s, T(rois), T(levels), pooled_h, pooled_w, sampling_ratio, aligned != 0);
  });
}

MR_API mr_tensor mr_roi_pool(mr_tensor input, mr_tensor rois, int64_t pooled_h, int64_t pooled_w, double scale) {
  return wrap([&] { return roi_pool_any(T(input), T(rois), pooled_h, pooled_w, scale); });
}

// Value checks for argument validation: 1 when every element is finite (0 otherwise, -1 on error).
MR_API int mr_all_finite(mr_tensor h) {
  return guard([&] {
    const auto& t = T(h);
    if (t.numel() == 0 || !at::isFloatingType(t.scalar_type())) return 1;
    return at::isfinite(t.detach()).all().item<bool>() ? 1 : 0;
  }, -1);
}

// 1 when any element is NaN (0 otherwise, -1 on error).
MR_API int mr_any_nan(mr_tensor h) {
  return guard([&] {
    const auto& t = T(h);
    if (t.numel() == 0 || !at::isFloatingType(t.scalar_type())) return 0;
    return at::isnan(t.detach()).any().item<bool>() ? 1 : 0;
  }, -1);
}

// Checks a RoI table [K, 5] against a batch of `batch` images: 0 = valid, 1 = non-finite values, 2 = a batch index
// that is not an integer in [0, batch); -1 on error.
MR_API int mr_check_rois(mr_tensor h, int64_t batch) {
  return guard([&] {
    auto r = T(h).detach().to(at::kDouble);
    if (r.numel() == 0) return 0;
    if (!at::isfinite(r).all().item<bool>()) return 1;
    auto idx = r.select(1, 0);
    auto ok = (idx >= 0).logical_and(idx < static_cast<double>(batch)).logical_and(idx == idx.trunc());
    return ok.all().item<bool>() ? 0 : 2;
  }, -1);
}
