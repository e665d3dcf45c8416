// Shared plumbing of the MaskRcnn.Net native shim: handle type, exception barrier, last-error string.
// Every exported function goes through MR_GUARD / mr_wrap so that no C++ exception crosses the C ABI.
#pragma once

#include <ATen/ATen.h>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#define MR_API extern "C" __attribute__((visibility("default")))

typedef at::Tensor* mr_tensor;
// A private random generator (a clone of a device's default one with its own seed and state).
typedef at::Generator* mr_generator;

namespace mr {

void set_last_error(const char* message);
void clear_last_error();

// Runs `f`, returning its value; any exception becomes the per-thread last error and `fail` is returned.
template <typename F, typename R>
inline R guard(F&& f, R fail) noexcept {
  try {
    return f();
  } catch (const c10::Error& e) {
    set_last_error(e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_last_error(e.what());
  } catch (...) {
    set_last_error("unknown native exception");
  }
  return fail;
}

// Runs `f` that produces a tensor and returns a new heap handle to it (nullptr on error).
template <typename F>
inline mr_tensor wrap(F&& f) noexcept {
  return guard([&]() -> mr_tensor { return new at::Tensor(f()); }, static_cast<mr_tensor>(nullptr));
}

// Runs `f` that returns nothing; 0 on success, -1 on error.
template <typename F>
inline int run(F&& f) noexcept {
  return guard([&]() -> int { f(); return 0; }, -1);
}

inline at::IntArrayRef dims(const int64_t* p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

inline const at::Tensor& T(mr_tensor h) {
  if (h == nullptr) throw std::invalid_argument("tensor handle is null (disposed tensor?)");
  return *h;
}

inline c10::optional<at::Tensor> opt(mr_tensor h) {
  if (h == nullptr) return c10::nullopt;
  return *h;
}

// The generator a random op draws from: the given one, or the device's default generator for a null handle.
inline c10::optional<at::Generator> gen(mr_generator g) {
  if (g == nullptr) return c10::nullopt;
  return *g;
}

inline at::Device device(int type, int index) {
  return at::Device(static_cast<c10::DeviceType>(type), static_cast<c10::DeviceIndex>(index));
}

inline at::TensorOptions options(int dtype, int dev_type, int dev_index) {
  return at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)).device(device(dev_type, dev_index));
}

// A scalar passed across the ABI: integral values travel as int64 so integer tensors stay integer.
inline at::Scalar scalar(double d, int64_t i, int is_int) {
  return is_int ? at::Scalar(i) : at::Scalar(d);
}

// A 3×3, stride-1, padding-1 float32 CPU convolution that records no gradient, through oneDNN's Winograd kernels
// (winograd.cpp). Returns false, leaving `out` alone, when the call is not eligible or the path is unavailable.
bool try_conv2d_winograd(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                         at::Tensor& out);

}  // namespace mr
