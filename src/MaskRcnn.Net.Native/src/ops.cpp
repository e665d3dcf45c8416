// Element-wise, reduction, shape and indexing operations, selected by small integer op codes so the ABI stays
// compact. The codes are mirrored by the managed enums UnaryOp, BinaryOp and ReduceOp.
#include "mr_common.h"

#include <cmath>

using namespace mr;

namespace {

at::Tensor unary(const at::Tensor& t, int op) {
  switch (op) {
    case 0: return at::neg(t);
    case 1: return at::abs(t);
    case 2: return at::exp(t);
    case 3: return at::log(t);
    case 4: return at::sqrt(t);
    case 5: return at::rsqrt(t);
    case 6: return at::sigmoid(t);
    case 7: return at::relu(t);
    case 8: return at::tanh(t);
    case 9: return at::floor(t);
    case 10: return at::ceil(t);
    case 11: return at::round(t);
    case 12: return at::sign(t);
    case 13: return at::logical_not(t);
    case 14: return at::isfinite(t);
    case 15: return at::isnan(t);
    case 16: return at::sin(t);
    case 17: return at::cos(t);
    case 18: return at::log1p(t);
    case 19: return at::expm1(t);
    case 20: return at::reciprocal(t);
    case 21: return at::trunc(t);
    case 22: return t.clone();
    case 23: return t.contiguous();
    case 24: return at::square(t);
    case 25: return at::log2(t);
    case 26: return at::isinf(t);
    case 27: return at::bitwise_not(t);
  }
  throw std::invalid_argument("unknown unary op " + std::to_string(op));
}

void unary_(at::Tensor& t, int op) {
  switch (op) {
    case 0: t.neg_(); return;
    case 1: t.abs_(); return;
    case 2: t.exp_(); return;
    case 3: t.log_(); return;
    case 4: t.sqrt_(); return;
    case 5: t.rsqrt_(); return;
    case 6: t.sigmoid_(); return;
    case 7: t.relu_(); return;
    case 8: t.tanh_(); return;
    case 9: t.floor_(); return;
    case 10: t.ceil_(); return;
    case 11: t.round_(); return;
    case 12: t.sign_(); return;
    case 20: t.reciprocal_(); return;
    case 21: t.trunc_(); return;
    case 24: t.square_(); return;
  }
  throw std::invalid_argument("unary op " + std::to_string(op) + " has no in-place form");
}

at::Tensor binary(const at::Tensor& a, const at::Tensor& b, int op, const at::Scalar& alpha) {
  switch (op) {
    case 0: return at::add(a, b, alpha);
    case 1: return at::sub(a, b, alpha);
    case 2: return at::mul(a, b);
    case 3: return at::div(a, b);
    case 4: return at::pow(a, b);
    case 5: return at::maximum(a, b);
    case 6: return at::minimum(a, b);
    case 7: return at::eq(a, b);
    case 8: return at::ne(a, b);
    case 9: return at::lt(a, b);
    case 10: return at::le(a, b);
    case 11: return at::gt(a, b);
    case 12: return at::ge(a, b);
    case 13: return at::logical_and(a, b);
    case 14: return at::logical_or(a, b);
    case 15: return at::logical_xor(a, b);
    case 16: return at::remainder(a, b);
    case 17: return at::div(a, b, "floor");
    case 18: return at::atan2(a, b);
    case 19: return at::bitwise_and(a, b);
    case 20: return at::bitwise_or(a, b);
    case 21: return at::div(a, b, "trunc");
  }
  throw std::invalid_argument("unknown binary op " + std::to_string(op));
}

void binary_(at::Tensor& a, const at::Tensor& b, int op, const at::Scalar& alpha) {
  switch (op) {
    case 0: a.add_(b, alpha); return;
    case 1: a.sub_(b, alpha); return;
    case 2: a.mul_(b); return;
    case 3: a.div_(b); return;
    case 4: a.pow_(b); return;
    case 16: a.remainder_(b); return;
    case 17: a.div_(b, "floor"); return;
    case 21: a.div_(b, "trunc"); return;
  }
  throw std::invalid_argument("binary op " + std::to_string(op) + " has no in-place form");
}

// A Python-style scalar operand: takes part in type promotion like a number, not like a 0-dim tensor.
at::Tensor wrapped(const at::Scalar& s, const at::Device& dev) {
  auto t = at::scalar_to_tensor(s, dev);
  t.unsafeGetTensorImpl()->set_wrapped_number(true);
  return t;
}

std::vector<at::Tensor> list(const mr_tensor* hs, int n) {
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) v.push_back(T(hs[k]));
  return v;
}

// Writes up to `cap` new handles into `out`, returns how many tensors there are.
int emit(const std::vector<at::Tensor>& ts, mr_tensor* out, int cap) {
  int n = static_cast<int>(ts.size());
  for (int k = 0; k < n && k < cap; ++k) out[k] = new at::Tensor(ts[static_cast<size_t>(k)]);
  return n;
}

}  // namespace

// ---- element-wise --------------------------------------------------------------------------------------------
MR_API mr_tensor mr_unary(mr_tensor h, int op) { return wrap([&] { return unary(T(h), op); }); }
MR_API int mr_unary_(mr_tensor h, int op) { return run([&] { unary_(*h, op); }); }
MR_API mr_tensor mr_binary(mr_tensor a, mr_tensor b, int op, double alpha) {
  return wrap([&] { return binary(T(a), T(b), op, at::Scalar(alpha)); });
}
MR_API mr_tensor mr_binary_scalar(mr_tensor a, double d, int64_t i, int is_int, int op, int scalar_first) {
  return wrap([&] {
    auto s = wrapped(scalar(d, i, is_int), T(a).device());
    return scalar_first ? binary(s, T(a), op, at::Scalar(1)) : binary(T(a), s, op, at::Scalar(1));
  });
}
MR_API int mr_binary_(mr_tensor a, mr_tensor b, int op, double alpha) {
  return run([&] { binary_(*a, T(b), op, at::Scalar(alpha)); });
}
MR_API int mr_binary_scalar_(mr_tensor a, double d, int64_t i, int is_int, int op) {
  return run([&] { binary_(*a, wrapped(scalar(d, i, is_int), T(a).device()), op, at::Scalar(1)); });
}
MR_API int mr_addcmul_(mr_tensor h, mr_tensor a, mr_tensor b, double value) {
  return run([&] { h->addcmul_(T(a), T(b), value); });
}
MR_API int mr_addcdiv_(mr_tensor h, mr_tensor a, mr_tensor b, double value) {
  return run([&] { h->addcdiv_(T(a), T(b), value); });
}
MR_API int mr_lerp_(mr_tensor h, mr_tensor end, double weight) { return run([&] { h->lerp_(T(end), weight); }); }
MR_API int mr_copy_(mr_tensor dst, mr_tensor src) { return run([&] { dst->copy_(T(src)); }); }
MR_API int mr_fill_(mr_tensor h, double d, int64_t i, int is_int) {
  return run([&] { h->fill_(scalar(d, i, is_int)); });
}
MR_API int mr_zero_(mr_tensor h) { return run([&] { h->zero_(); }); }
MR_API int mr_uniform_(mr_tensor h, double from, double to, mr_generator g) {
  return run([&] { h->uniform_(from, to, gen(g)); });
}
MR_API int mr_normal_(mr_tensor h, double mean, double std, mr_generator g) {
  return run([&] { h->normal_(mean, std, gen(g)); });
}
// Bounds of a clamp: whole-number bounds of an integer tensor stay integers, so the result keeps its dtype.
static c10::optional<at::Scalar> bound(const at::Tensor& t, double v, int has) {
  if (!has) return c10::nullopt;
  if (!at::isFloatingType(t.scalar_type()) && std::floor(v) == v && std::abs(v) < 9.2e18)
    return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}
MR_API mr_tensor mr_clamp(mr_tensor h, double lo, int has_lo, double hi, int has_hi) {
  return wrap([&] { return at::clamp(T(h), bound(T(h), lo, has_lo), bound(T(h), hi, has_hi)); });
}
MR_API int mr_clamp_(mr_tensor h, double lo, int has_lo, double hi, int has_hi) {
  return run([&] { h->clamp_(bound(T(h), lo, has_lo), bound(T(h), hi, has_hi)); });
}
MR_API mr_tensor mr_clamp_t(mr_tensor h, mr_tensor lo, mr_tensor hi) {
  return wrap([&] { return at::clamp(T(h), opt(lo), opt(hi)); });
}
MR_API mr_tensor mr_where(mr_tensor c, mr_tensor a, mr_tensor b) {
  return wrap([&] { return at::where(T(c), T(a), T(b)); });
}
MR_API mr_tensor mr_pow_scalar(mr_tensor h, double e) { return wrap([&] { return at::pow(T(h), e); }); }
MR_API mr_tensor mr_allclose(mr_tensor a, mr_tensor b, double rtol, double atol) {
  return wrap([&] { return at::scalar_tensor(at::allclose(T(a), T(b), rtol, atol), at::kBool); });
}

// ---- reductions ----------------------------------------------------------------------------------------------
MR_API mr_tensor mr_reduce(mr_tensor h, int op, const int64_t* dim, int ndim, int keepdim, int flag) {
  return wrap([&] {
    const auto& t = T(h);
    bool all = ndim == 0;
    auto d = dims(dim, ndim);
    switch (op) {
      case 0: return all ? at::sum(t) : at::sum(t, d, keepdim != 0);
      case 1: return all ? at::mean(t) : at::mean(t, d, keepdim != 0);
      case 2: return at::amax(t, d, keepdim != 0);
      case 3: return at::amin(t, d, keepdim != 0);
      case 4:
        if (all) return at::prod(t);
        if (ndim != 1) throw std::invalid_argument("prod reduces over one dimension at a time");
        return at::prod(t, dim[0], keepdim != 0);
      case 5:
        if (all) return at::all(t);
        if (ndim != 1) throw std::invalid_argument("all reduces over one dimension at a time");
        return at::all(t, dim[0], keepdim != 0);
      case 6:
        if (all) return at::any(t);
        if (ndim != 1) throw std::invalid_argument("any reduces over one dimension at a time");
        return at::any(t, dim[0], keepdim != 0);
      case 7: return all ? at::std(t, flag != 0) : at::std(t, d, flag != 0, keepdim != 0);
      case 8: return all ? at::var(t, flag != 0) : at::var(t, d, flag != 0, keepdim != 0);
      case 9: return at::logsumexp(t, d, keepdim != 0);
      case 10: return all ? at::norm(t) : at::norm(t, 2, d, keepdim != 0);
    }
    throw std::invalid_argument("unknown reduction " + std::to_string(op));
  });
}
MR_API mr_tensor mr_argmax(mr_tensor h, int64_t dim, int has_dim, int keepdim, int is_min) {
  return wrap([&] {
    auto d = has_dim ? c10::optional<int64_t>(dim) : c10::nullopt;
    return is_min ? at::argmin(T(h), d, keepdim != 0) : at::argmax(T(h), d, keepdim != 0);
  });
}
MR_API int mr_max_dim(mr_tensor h, int64_t dim, int keepdim, int is_min, mr_tensor* values, mr_tensor* indices) {
  return run([&] {
    auto r = is_min ? at::min(T(h), dim, keepdim != 0) : at::max(T(h), dim, keepdim != 0);
    *values = new at::Tensor(std::get<0>(r));
    *indices = new at::Tensor(std::get<1>(r));
  });
}
MR_API mr_tensor mr_cumsum(mr_tensor h, int64_t dim) { return wrap([&] { return at::cumsum(T(h), dim); }); }

// ---- shape and views -----------------------------------------------------------------------------------------
MR_API mr_tensor mr_reshape(mr_tensor h, const int64_t* s, int n) { return wrap([&] { return T(h).reshape(dims(s, n)); }); }
MR_API mr_tensor mr_view(mr_tensor h, const int64_t* s, int n) { return wrap([&] { return T(h).view(dims(s, n)); }); }
MR_API mr_tensor mr_permute(mr_tensor h, const int64_t* s, int n) { return wrap([&] { return T(h).permute(dims(s, n)); }); }
MR_API mr_tensor mr_expand(mr_tensor h, const int64_t* s, int n) { return wrap([&] { return T(h).expand(dims(s, n)); }); }
MR_API mr_tensor mr_repeat(mr_tensor h, const int64_t* s, int n) { return wrap([&] { return T(h).repeat(dims(s, n)); }); }
MR_API mr_tensor mr_flip(mr_tensor h, const int64_t* s, int n) { return wrap([&] { return at::flip(T(h), dims(s, n)); }); }
MR_API mr_tensor mr_transpose(mr_tensor h, int64_t a, int64_t b) { return wrap([&] { return T(h).transpose(a, b); }); }
MR_API mr_tensor mr_squeeze(mr_tensor h, int64_t dim, int all) {
  return wrap([&] { return all ? T(h).squeeze() : T(h).squeeze(dim); });
}
MR_API mr_tensor mr_unsqueeze(mr_tensor h, int64_t dim) { return wrap([&] { return T(h).unsqueeze(dim); }); }
MR_API mr_tensor mr_flatten(mr_tensor h, int64_t start, int64_t end) { return wrap([&] { return T(h).flatten(start, end); }); }
MR_API mr_tensor mr_slice(mr_tensor h, int64_t dim, int64_t start, int64_t end, int64_t step) {
  return wrap([&] { return T(h).slice(dim, start, end, step); });
}
MR_API mr_tensor mr_select(mr_tensor h, int64_t dim, int64_t index) { return wrap([&] { return T(h).select(dim, index); }); }
MR_API mr_tensor mr_as_strided(mr_tensor h, const int64_t* size, const int64_t* stride, int n, int64_t offset) {
  return wrap([&] { return T(h).as_strided(dims(size, n), dims(stride, n), offset); });
}
MR_API mr_tensor mr_cat(const mr_tensor* hs, int n, int64_t dim) { return wrap([&] { return at::cat(list(hs, n), dim); }); }
MR_API mr_tensor mr_stack(const mr_tensor* hs, int n, int64_t dim) { return wrap([&] { return at::stack(list(hs, n), dim); }); }
MR_API int mr_split(mr_tensor h, const int64_t* sizes, int n, int64_t dim, mr_tensor* out, int cap) {
  return guard([&] { return emit(at::split_with_sizes(T(h), dims(sizes, n), dim), out, cap); }, -1);
}
MR_API int mr_chunk(mr_tensor h, int64_t chunks, int64_t dim, mr_tensor* out, int cap) {
  return guard([&] { return emit(at::chunk(T(h), chunks, dim), out, cap); }, -1);
}
MR_API int mr_unbind(mr_tensor h, int64_t dim, mr_tensor* out, int cap) {
  return guard([&] { return emit(at::unbind(T(h), dim), out, cap); }, -1);
}
MR_API int mr_meshgrid(const mr_tensor* hs, int n, mr_tensor* out, int cap) {
  return guard([&] { return emit(at::meshgrid(list(hs, n), "ij"), out, cap); }, -1);
}

// ---- indexing ------------------------------------------------------------------------------------------------
MR_API mr_tensor mr_index_select(mr_tensor h, int64_t dim, mr_tensor idx) {
  return wrap([&] { return at::index_select(T(h), dim, T(idx)); });
}
MR_API mr_tensor mr_gather(mr_tensor h, int64_t dim, mr_tensor idx) { return wrap([&] { return at::gather(T(h), dim, T(idx)); }); }
MR_API mr_tensor mr_scatter(mr_tensor h, int64_t dim, mr_tensor idx, mr_tensor src) {
  return wrap([&] { return at::scatter(T(h), dim, T(idx), T(src)); });
}
MR_API mr_tensor mr_masked_select(mr_tensor h, mr_tensor mask) { return wrap([&] { return at::masked_select(T(h), T(mask)); }); }
MR_API mr_tensor mr_masked_fill(mr_tensor h, mr_tensor mask, double d, int64_t i, int is_int) {
  return wrap([&] { return at::masked_fill(T(h), T(mask), scalar(d, i, is_int)); });
}
MR_API int mr_masked_fill_(mr_tensor h, mr_tensor mask, double d, int64_t i, int is_int) {
  return run([&] { h->masked_fill_(T(mask), scalar(d, i, is_int)); });
}
MR_API mr_tensor mr_nonzero(mr_tensor h) { return wrap([&] { return at::nonzero(T(h)); }); }
// Advanced indexing t[i0, i1, ...]; a null entry stands for a full slice ':'.
MR_API mr_tensor mr_index(mr_tensor h, const mr_tensor* idx, int n) {
  return wrap([&] {
    c10::List<c10::optional<at::Tensor>> l;
    for (int k = 0; k < n; ++k) l.push_back(opt(idx[k]));
    return at::index(T(h), l);
  });
}
MR_API int mr_index_put_(mr_tensor h, const mr_tensor* idx, int n, mr_tensor values, int accumulate) {
  return run([&] {
    c10::List<c10::optional<at::Tensor>> l;
    for (int k = 0; k < n; ++k) l.push_back(opt(idx[k]));
    h->index_put_(l, T(values), accumulate != 0);
  });
}
MR_API int mr_sort(mr_tensor h, int64_t dim, int descending, int stable, mr_tensor* values, mr_tensor* indices) {
  return run([&] {
    auto r = at::sort(T(h), c10::optional<bool>(stable != 0), dim, descending != 0);
    *values = new at::Tensor(std::get<0>(r));
    *indices = new at::Tensor(std::get<1>(r));
  });
}
MR_API int mr_topk(mr_tensor h, int64_t k, int64_t dim, int largest, int sorted, mr_tensor* values, mr_tensor* indices) {
  return run([&] {
    auto r = at::topk(T(h), k, dim, largest != 0, sorted != 0);
    *values = new at::Tensor(std::get<0>(r));
    *indices = new at::Tensor(std::get<1>(r));
  });
}
MR_API mr_tensor mr_unique(mr_tensor h, int sorted) {
  return wrap([&] { return std::get<0>(at::_unique(T(h), sorted != 0, false)); });
}
MR_API mr_tensor mr_repeat_interleave(mr_tensor h, int64_t repeats, int64_t dim) {
  return wrap([&] { return at::repeat_interleave(T(h), repeats, dim); });
}

// ---- linear algebra ------------------------------------------------------------------------------------------
MR_API mr_tensor mr_matmul(mr_tensor a, mr_tensor b) { return wrap([&] { return at::matmul(T(a), T(b)); }); }
