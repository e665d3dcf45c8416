using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>P/Invoke declarations of the native shim (libmaskrcnn_native). Handles are <c>at::Tensor*</c>.</summary>
internal static partial class NativeMethods
{
    internal const string Lib = "maskrcnn_native";

    [LibraryImport(Lib)] internal static partial nint mr_last_error();
    [LibraryImport(Lib)] internal static partial void mr_clear_error();
    [LibraryImport(Lib)] internal static partial int mr_cpu_cache_configure(long limitBytes, long minBlockBytes);
    [LibraryImport(Lib)] internal static partial int mr_cpu_cache_release();
    [LibraryImport(Lib)] internal static unsafe partial int mr_cpu_cache_stats(long* stats);
    [LibraryImport(Lib)] internal static partial int mr_winograd_available();
    [LibraryImport(Lib)] internal static partial int mr_winograd_enabled();
    [LibraryImport(Lib)] internal static partial void mr_winograd_set_enabled(int on);
    [LibraryImport(Lib)] internal static unsafe partial int mr_winograd_stats(long* stats);
    [LibraryImport(Lib)] internal static partial int mr_abi_version();
    [LibraryImport(Lib)] internal static partial void mr_tensor_free(nint h);

    [LibraryImport(Lib)] internal static unsafe partial nint mr_from_data(void* data, long* shape, int ndim, int dtype, int devType, int devIndex);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_empty(long* shape, int ndim, int dtype, int dt, int di);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_full(long* shape, int ndim, double d, long i, int isInt, int dtype, int dt, int di);
    [LibraryImport(Lib)] internal static partial nint mr_arange(double start, double end, double step, int dtype, int dt, int di);
    [LibraryImport(Lib)] internal static partial nint mr_linspace(double start, double end, long steps, int dtype, int dt, int di);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_rand(long* shape, int ndim, int normal, int dtype, int dt, int di, GeneratorHandle g);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_randint(long low, long high, long* shape, int ndim, int dtype, int dt, int di, GeneratorHandle g);
    [LibraryImport(Lib)] internal static partial nint mr_randperm(long n, int dt, int di, GeneratorHandle g);
    [LibraryImport(Lib)] internal static partial nint mr_eye(long n, int dtype, int dt, int di);

    [LibraryImport(Lib)] internal static partial int mr_dim(TensorHandle h);
    [LibraryImport(Lib)] internal static unsafe partial int mr_shape(TensorHandle h, long* output, int cap);
    [LibraryImport(Lib)] internal static unsafe partial int mr_strides(TensorHandle h, long* output, int cap);
    [LibraryImport(Lib)] internal static partial long mr_numel(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_dtype(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_device(TensorHandle h, out int type, out int index);
    [LibraryImport(Lib)] internal static partial int mr_is_contiguous(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_is_contiguous_format(TensorHandle h, int format);
    [LibraryImport(Lib)] internal static partial nint mr_contiguous_format(TensorHandle h, int format);
    [LibraryImport(Lib)] internal static partial long mr_storage_offset(TensorHandle h);
    [LibraryImport(Lib)] internal static unsafe partial int mr_copy_to(TensorHandle h, int dtype, void* dst, long nbytes);
    [LibraryImport(Lib)] internal static partial nint mr_data_ptr(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_item(TensorHandle h, out double d, out long i);
    [LibraryImport(Lib)] internal static partial nint mr_to(TensorHandle h, int dtype, int dt, int di, int copy);
    [LibraryImport(Lib)] internal static partial nint mr_alias(TensorHandle h);
    [LibraryImport(Lib)] internal static partial nint mr_to_string(TensorHandle h);
    [LibraryImport(Lib)] internal static partial void mr_free_string(nint s);

    [LibraryImport(Lib)] internal static partial int mr_requires_grad(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_set_requires_grad(TensorHandle h, int on);
    [LibraryImport(Lib)] internal static partial nint mr_grad(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_set_grad(TensorHandle h, TensorHandle g);
    [LibraryImport(Lib)] internal static partial int mr_backward(TensorHandle h, TensorHandle grad, int retainGraph, int createGraph);
    [LibraryImport(Lib)] internal static partial nint mr_detach(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_set_data(TensorHandle h, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int mr_is_leaf(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_grad_enabled();
    [LibraryImport(Lib)] internal static partial void mr_set_grad_enabled(int on);
    [LibraryImport(Lib)] internal static partial nint mr_inference_mode_enter();
    [LibraryImport(Lib)] internal static partial void mr_inference_mode_exit(nint guard);
    [LibraryImport(Lib)] internal static partial int mr_is_inference(TensorHandle h);

    [LibraryImport(Lib)] internal static partial int mr_manual_seed(ulong seed);
    [LibraryImport(Lib)] internal static partial nint mr_get_rng_state(int dt, int di);
    [LibraryImport(Lib)] internal static partial int mr_set_rng_state(int dt, int di, TensorHandle state);
    [LibraryImport(Lib)] internal static partial nint mr_generator_new(int dt, int di, ulong seed);
    [LibraryImport(Lib)] internal static partial void mr_generator_free(nint g);
    [LibraryImport(Lib)] internal static partial nint mr_generator_get_state(GeneratorHandle g);
    [LibraryImport(Lib)] internal static partial int mr_generator_set_state(GeneratorHandle g, TensorHandle state);
    [LibraryImport(Lib)] internal static partial void mr_set_num_threads(int n);
    [LibraryImport(Lib)] internal static partial int mr_get_num_threads();
    [LibraryImport(Lib)] internal static partial int mr_cuda_device_count();
    [LibraryImport(Lib)] internal static partial nint mr_config_string();

    [LibraryImport(Lib)] internal static partial nint mr_unary(TensorHandle h, int op);
    [LibraryImport(Lib)] internal static partial int mr_unary_(TensorHandle h, int op);
    [LibraryImport(Lib)] internal static partial nint mr_binary(TensorHandle a, TensorHandle b, int op, double alpha);
    [LibraryImport(Lib)] internal static partial nint mr_binary_scalar(TensorHandle a, double d, long i, int isInt, int op, int scalarFirst);
    [LibraryImport(Lib)] internal static partial int mr_binary_(TensorHandle a, TensorHandle b, int op, double alpha);
    [LibraryImport(Lib)] internal static partial int mr_binary_scalar_(TensorHandle a, double d, long i, int isInt, int op);
    [LibraryImport(Lib)] internal static partial int mr_addcmul_(TensorHandle h, TensorHandle a, TensorHandle b, double value);
    [LibraryImport(Lib)] internal static partial int mr_addcdiv_(TensorHandle h, TensorHandle a, TensorHandle b, double value);
    [LibraryImport(Lib)] internal static partial int mr_lerp_(TensorHandle h, TensorHandle end, double weight);
    [LibraryImport(Lib)] internal static partial int mr_copy_(TensorHandle dst, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int mr_fill_(TensorHandle h, double d, long i, int isInt);
    [LibraryImport(Lib)] internal static partial int mr_zero_(TensorHandle h);
    [LibraryImport(Lib)] internal static partial int mr_uniform_(TensorHandle h, double from, double to, GeneratorHandle g);
    [LibraryImport(Lib)] internal static partial int mr_normal_(TensorHandle h, double mean, double std, GeneratorHandle g);
    [LibraryImport(Lib)] internal static partial nint mr_clamp(TensorHandle h, double lo, int hasLo, double hi, int hasHi);
    [LibraryImport(Lib)] internal static partial int mr_clamp_(TensorHandle h, double lo, int hasLo, double hi, int hasHi);
    [LibraryImport(Lib)] internal static partial nint mr_clamp_t(TensorHandle h, TensorHandle lo, TensorHandle hi);
    [LibraryImport(Lib)] internal static partial nint mr_where(TensorHandle c, TensorHandle a, TensorHandle b);
    [LibraryImport(Lib)] internal static partial nint mr_pow_scalar(TensorHandle h, double e);
    [LibraryImport(Lib)] internal static partial nint mr_allclose(TensorHandle a, TensorHandle b, double rtol, double atol);

    [LibraryImport(Lib)] internal static unsafe partial nint mr_reduce(TensorHandle h, int op, long* dim, int ndim, int keepdim, int flag);
    [LibraryImport(Lib)] internal static partial nint mr_argmax(TensorHandle h, long dim, int hasDim, int keepdim, int isMin);
    [LibraryImport(Lib)] internal static partial int mr_max_dim(TensorHandle h, long dim, int keepdim, int isMin, out nint values, out nint indices);
    [LibraryImport(Lib)] internal static partial nint mr_cumsum(TensorHandle h, long dim);

    [LibraryImport(Lib)] internal static unsafe partial nint mr_reshape(TensorHandle h, long* s, int n);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_view(TensorHandle h, long* s, int n);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_permute(TensorHandle h, long* s, int n);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_expand(TensorHandle h, long* s, int n);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_repeat(TensorHandle h, long* s, int n);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_flip(TensorHandle h, long* s, int n);
    [LibraryImport(Lib)] internal static partial nint mr_transpose(TensorHandle h, long a, long b);
    [LibraryImport(Lib)] internal static partial nint mr_squeeze(TensorHandle h, long dim, int all);
    [LibraryImport(Lib)] internal static partial nint mr_unsqueeze(TensorHandle h, long dim);
    [LibraryImport(Lib)] internal static partial nint mr_flatten(TensorHandle h, long start, long end);
    [LibraryImport(Lib)] internal static partial nint mr_slice(TensorHandle h, long dim, long start, long end, long step);
    [LibraryImport(Lib)] internal static partial nint mr_select(TensorHandle h, long dim, long index);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_as_strided(TensorHandle h, long* size, long* stride, int n, long offset);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_cat(nint* hs, int n, long dim);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_stack(nint* hs, int n, long dim);
    [LibraryImport(Lib)] internal static unsafe partial int mr_split(TensorHandle h, long* sizes, int n, long dim, nint* output, int cap);
    [LibraryImport(Lib)] internal static unsafe partial int mr_chunk(TensorHandle h, long chunks, long dim, nint* output, int cap);
    [LibraryImport(Lib)] internal static unsafe partial int mr_unbind(TensorHandle h, long dim, nint* output, int cap);
    [LibraryImport(Lib)] internal static unsafe partial int mr_meshgrid(nint* hs, int n, nint* output, int cap);

    [LibraryImport(Lib)] internal static partial nint mr_index_select(TensorHandle h, long dim, TensorHandle idx);
    [LibraryImport(Lib)] internal static partial nint mr_gather(TensorHandle h, long dim, TensorHandle idx);
    [LibraryImport(Lib)] internal static partial nint mr_scatter(TensorHandle h, long dim, TensorHandle idx, TensorHandle src);
    [LibraryImport(Lib)] internal static partial nint mr_masked_select(TensorHandle h, TensorHandle mask);
    [LibraryImport(Lib)] internal static partial nint mr_masked_fill(TensorHandle h, TensorHandle mask, double d, long i, int isInt);
    [LibraryImport(Lib)] internal static partial int mr_masked_fill_(TensorHandle h, TensorHandle mask, double d, long i, int isInt);
    [LibraryImport(Lib)] internal static partial nint mr_nonzero(TensorHandle h);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_index(TensorHandle h, nint* idx, int n);
    [LibraryImport(Lib)] internal static unsafe partial int mr_index_put_(TensorHandle h, nint* idx, int n, TensorHandle values, int accumulate);
    [LibraryImport(Lib)] internal static partial int mr_sort(TensorHandle h, long dim, int descending, int stable, out nint values, out nint indices);
    [LibraryImport(Lib)] internal static partial int mr_topk(TensorHandle h, long k, long dim, int largest, int sorted, out nint values, out nint indices);
    [LibraryImport(Lib)] internal static partial nint mr_unique(TensorHandle h, int sorted);
    [LibraryImport(Lib)] internal static partial nint mr_repeat_interleave(TensorHandle h, long repeats, long dim);
    [LibraryImport(Lib)] internal static partial nint mr_matmul(TensorHandle a, TensorHandle b);

    [LibraryImport(Lib)] internal static unsafe partial nint mr_conv2d(TensorHandle x, TensorHandle w, TensorHandle b, long* stride, long* padding, long* dilation, long groups);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_conv_transpose2d(TensorHandle x, TensorHandle w, TensorHandle b, long* stride, long* padding, long* outputPadding, long groups, long* dilation);
    [LibraryImport(Lib)] internal static partial nint mr_batch_norm(TensorHandle x, TensorHandle w, TensorHandle b, TensorHandle mean, TensorHandle var, int training, double momentum, double eps);
    [LibraryImport(Lib)] internal static partial nint mr_group_norm(TensorHandle x, long groups, TensorHandle w, TensorHandle b, double eps);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_max_pool2d(TensorHandle x, long* kernel, long* stride, long* padding, long* dilation, int ceilMode);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_avg_pool2d(TensorHandle x, long* kernel, long* stride, long* padding, int ceilMode, int countIncludePad);
    [LibraryImport(Lib)] internal static unsafe partial nint mr_adaptive_avg_pool2d(TensorHandle x, long* size);
    [LibraryImport(Lib)] internal static partial nint mr_interpolate(TensorHandle x, long outH, long outW, int mode, int alignCorners, double scaleH, double scaleW);
    [LibraryImport(Lib)] internal static partial nint mr_linear(TensorHandle x, TensorHandle w, TensorHandle b);
    [LibraryImport(Lib)] internal static partial nint mr_dropout(TensorHandle x, double p, int train);
    [LibraryImport(Lib)] internal static partial nint mr_softmax(TensorHandle x, long dim, int log);
    [LibraryImport(Lib)] internal static partial nint mr_cross_entropy(TensorHandle x, TensorHandle target, TensorHandle weight, int reduction, long ignoreIndex, double labelSmoothing);
    [LibraryImport(Lib)] internal static partial nint mr_bce_with_logits(TensorHandle x, TensorHandle target, TensorHandle weight, TensorHandle posWeight, int reduction);
    [LibraryImport(Lib)] internal static partial nint mr_smooth_l1(TensorHandle x, TensorHandle target, int reduction, double beta);
    [LibraryImport(Lib)] internal static partial nint mr_l1(TensorHandle x, TensorHandle target, int reduction);
    [LibraryImport(Lib)] internal static partial nint mr_mse(TensorHandle x, TensorHandle target, int reduction);
}
