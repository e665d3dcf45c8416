// Neural-network functions (convolutions, normalisation, pooling, resampling, losses). Plain ATen calls with
// positional arguments: source-compatible with libtorch 1.13 and 2.x, CPU and CUDA.
#include "mr_common.h"

using namespace mr;

MR_API mr_tensor mr_conv2d(mr_tensor x, mr_tensor w, mr_tensor b, const int64_t* stride, const int64_t* padding,
                           const int64_t* dilation, int64_t groups) {
  return wrap([&] {
    at::Tensor out;
    if (try_conv2d_winograd(T(x), T(w), opt(b), dims(stride, 2), dims(padding, 2), dims(dilation, 2), groups, out)) {
      return out;
    }
    return at::conv2d(T(x), T(w), opt(b), dims(stride, 2), dims(padding, 2), dims(dilation, 2), groups);
  });
}
MR_API mr_tensor mr_conv_transpose2d(mr_tensor x, mr_tensor w, mr_tensor b, const int64_t* stride,
                                     const int64_t* padding, const int64_t* output_padding, int64_t groups,
                                     const int64_t* dilation) {
  return wrap([&] {
    return at::conv_transpose2d(T(x), T(w), opt(b), dims(stride, 2), dims(padding, 2), dims(output_padding, 2),
                                groups, dims(dilation, 2));
  });
}
MR_API mr_tensor mr_batch_norm(mr_tensor x, mr_tensor w, mr_tensor b, mr_tensor mean, mr_tensor var, int training,
                               double momentum, double eps) {
  return wrap([&] {
    return at::batch_norm(T(x), opt(w), opt(b), opt(mean), opt(var), training != 0, momentum, eps,
                          /*cudnn_enabled=*/true);
  });
}
MR_API mr_tensor mr_group_norm(mr_tensor x, int64_t groups, mr_tensor w, mr_tensor b, double eps) {
  return wrap([&] { return at::group_norm(T(x), groups, opt(w), opt(b), eps, /*cudnn_enabled=*/true); });
}
MR_API mr_tensor mr_max_pool2d(mr_tensor x, const int64_t* kernel, const int64_t* stride, const int64_t* padding,
                               const int64_t* dilation, int ceil_mode) {
  return wrap([&] {
    return at::max_pool2d(T(x), dims(kernel, 2), dims(stride, 2), dims(padding, 2), dims(dilation, 2),
                          ceil_mode != 0);
  });
}
MR_API mr_tensor mr_avg_pool2d(mr_tensor x, const int64_t* kernel, const int64_t* stride, const int64_t* padding,
                               int ceil_mode, int count_include_pad) {
  return wrap([&] {
    return at::avg_pool2d(T(x), dims(kernel, 2), dims(stride, 2), dims(padding, 2), ceil_mode != 0,
                          count_include_pad != 0);
  });
}
MR_API mr_tensor mr_adaptive_avg_pool2d(mr_tensor x, const int64_t* size) {
  return wrap([&] { return at::adaptive_avg_pool2d(T(x), dims(size, 2)); });
}
// mode 0 = nearest, 1 = bilinear. Output size is given; scale_h/scale_w > 0 are passed to the kernel as the
// user's scale factors (PyTorch's recompute_scale_factor=False), otherwise the kernel derives them from sizes.
MR_API mr_tensor mr_interpolate(mr_tensor x, int64_t out_h, int64_t out_w, int mode, int align_corners,
                                double scale_h, double scale_w) {
  return wrap([&] {
    int64_t size[2] = {out_h, out_w};
    auto sh = scale_h > 0 ? c10::optional<double>(scale_h) : c10::nullopt;
    auto sw = scale_w > 0 ? c10::optional<double>(scale_w) : c10::nullopt;
    if (mode == 0) return at::upsample_nearest2d(T(x), at::IntArrayRef(size, 2), sh, sw);
    if (mode == 1) return at::upsample_bilinear2d(T(x), at::IntArrayRef(size, 2), align_corners != 0, sh, sw);
    throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
  });
}
MR_API mr_tensor mr_linear(mr_tensor x, mr_tensor w, mr_tensor b) { return wrap([&] { return at::linear(T(x), T(w), opt(b)); }); }
MR_API mr_tensor mr_dropout(mr_tensor x, double p, int train) { return wrap([&] { return at::dropout(T(x), p, train != 0); }); }
MR_API mr_tensor mr_softmax(mr_tensor x, int64_t dim, int log) {
  return wrap([&] { return log ? at::log_softmax(T(x), dim) : at::softmax(T(x), dim); });
}
// reduction: 0 none, 1 mean, 2 sum (at::Reduction).
MR_API mr_tensor mr_cross_entropy(mr_tensor x, mr_tensor target, mr_tensor weight, int reduction,
                                  int64_t ignore_index, double label_smoothing) {
  return wrap([&] {
    return at::cross_entropy_loss(T(x), T(target), opt(weight), reduction, ignore_index, label_smoothing);
  });
}
MR_API mr_tensor mr_bce_with_logits(mr_tensor x, mr_tensor target, mr_tensor weight, mr_tensor pos_weight,
                                    int reduction) {
  return wrap([&] {
    return at::binary_cross_entropy_with_logits(T(x), T(target), opt(weight), opt(pos_weight), reduction);
  });
}
MR_API mr_tensor mr_smooth_l1(mr_tensor x, mr_tensor target, int reduction, double beta) {
  return wrap([&] { return at::smooth_l1_loss(T(x), T(target), reduction, beta); });
}
MR_API mr_tensor mr_l1(mr_tensor x, mr_tensor target, int reduction) {
  return wrap([&] { return at::l1_loss(T(x), T(target), reduction); });
}
MR_API mr_tensor mr_mse(mr_tensor x, mr_tensor target, int reduction) {
  return wrap([&] { return at::mse_loss(T(x), T(target), reduction); });
}
