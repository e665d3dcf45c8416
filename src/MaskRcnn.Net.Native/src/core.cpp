// Tensor lifetime, creation, metadata, data access, autograd, grad modes, RNG and threads.
#include "mr_common.h"

#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <cstring>
#include <mutex>

namespace mr {
static thread_local std::string g_last_error;
static thread_local bool g_has_error = false;
void set_last_error(const char* message) {
  g_last_error = message ? message : "";
  g_has_error = true;
}
void clear_last_error() {
  g_last_error.clear();
  g_has_error = false;
}
}  // namespace mr

using namespace mr;

// ---- errors --------------------------------------------------------------------------------------------------
MR_API const char* mr_last_error() { return g_has_error ? g_last_error.c_str() : nullptr; }
MR_API void mr_clear_error() { clear_last_error(); }
MR_API int mr_abi_version() { return 2; }

// ---- lifetime ------------------------------------------------------------------------------------------------
MR_API void mr_tensor_free(mr_tensor h) { guard([&] { delete h; return 0; }, 0); }

// ---- creation ------------------------------------------------------------------------------------------------
MR_API mr_tensor mr_from_data(const void* data, const int64_t* shape, int ndim, int dtype, int dev_type,
                              int dev_index) {
  return wrap([&] {
    auto cpu = at::empty(dims(shape, ndim), at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)));
    if (cpu.nbytes() > 0) std::memcpy(cpu.data_ptr(), data, cpu.nbytes());
    return dev_type == 0 ? cpu : cpu.to(device(dev_type, dev_index));
  });
}

MR_API mr_tensor mr_empty(const int64_t* shape, int ndim, int dtype, int dt, int di) {
  return wrap([&] { return at::empty(dims(shape, ndim), options(dtype, dt, di)); });
}
MR_API mr_tensor mr_full(const int64_t* shape, int ndim, double d, int64_t i, int is_int, int dtype, int dt,
                         int di) {
  return wrap([&] { return at::full(dims(shape, ndim), scalar(d, i, is_int), options(dtype, dt, di)); });
}
MR_API mr_tensor mr_arange(double start, double end, double step, int dtype, int dt, int di) {
  return wrap([&] { return at::arange(start, end, step, options(dtype, dt, di)); });
}
MR_API mr_tensor mr_linspace(double start, double end, int64_t steps, int dtype, int dt, int di) {
  return wrap([&] { return at::linspace(start, end, steps, options(dtype, dt, di)); });
}
MR_API mr_tensor mr_rand(const int64_t* shape, int ndim, int normal, int dtype, int dt, int di, mr_generator g) {
  return wrap([&] {
    return normal ? at::randn(dims(shape, ndim), gen(g), options(dtype, dt, di))
                  : at::rand(dims(shape, ndim), gen(g), options(dtype, dt, di));
  });
}
MR_API mr_tensor mr_randint(int64_t low, int64_t high, const int64_t* shape, int ndim, int dtype, int dt, int di,
                            mr_generator g) {
  return wrap([&] { return at::randint(low, high, dims(shape, ndim), gen(g), options(dtype, dt, di)); });
}
MR_API mr_tensor mr_randperm(int64_t n, int dt, int di, mr_generator g) {
  return wrap([&] { return at::randperm(n, gen(g), options(static_cast<int>(at::kLong), dt, di)); });
}
MR_API mr_tensor mr_eye(int64_t n, int dtype, int dt, int di) {
  return wrap([&] { return at::eye(n, options(dtype, dt, di)); });
}

// ---- metadata ------------------------------------------------------------------------------------------------
MR_API int mr_dim(mr_tensor h) { return guard([&] { return static_cast<int>(T(h).dim()); }, -1); }
MR_API int mr_shape(mr_tensor h, int64_t* out, int cap) {
  return guard([&] {
    auto s = T(h).sizes();
    for (size_t k = 0; k < s.size() && static_cast<int>(k) < cap; ++k) out[k] = s[k];
    return static_cast<int>(s.size());
  }, -1);
}
MR_API int mr_strides(mr_tensor h, int64_t* out, int cap) {
  return guard([&] {
    auto s = T(h).strides();
    for (size_t k = 0; k < s.size() && static_cast<int>(k) < cap; ++k) out[k] = s[k];
    return static_cast<int>(s.size());
  }, -1);
}
MR_API int64_t mr_numel(mr_tensor h) { return guard([&] { return static_cast<int64_t>(T(h).numel()); }, (int64_t)-1); }
MR_API int mr_dtype(mr_tensor h) { return guard([&] { return static_cast<int>(T(h).scalar_type()); }, -1); }
MR_API int mr_device(mr_tensor h, int* type, int* index) {
  return run([&] {
    auto d = T(h).device();
    *type = static_cast<int>(d.type());
    *index = d.has_index() ? d.index() : -1;
  });
}
MR_API int mr_is_contiguous(mr_tensor h) { return guard([&] { return T(h).is_contiguous() ? 1 : 0; }, -1); }
// Memory formats: 0 = contiguous (NCHW), 1 = channels-last (NHWC strides for a 4-d tensor).
static at::MemoryFormat memory_format(int f) {
  if (f == 0) return at::MemoryFormat::Contiguous;
  if (f == 1) return at::MemoryFormat::ChannelsLast;
  throw std::invalid_argument("unknown memory format " + std::to_string(f));
}
MR_API int mr_is_contiguous_format(mr_tensor h, int f) {
  return guard([&] { return T(h).is_contiguous(memory_format(f)) ? 1 : 0; }, -1);
}
MR_API mr_tensor mr_contiguous_format(mr_tensor h, int f) { return wrap([&] { return T(h).contiguous(memory_format(f)); }); }
MR_API int64_t mr_storage_offset(mr_tensor h) { return guard([&] { return T(h).storage_offset(); }, (int64_t)-1); }

// ---- data access ---------------------------------------------------------------------------------------------
// Copies the tensor's elements (row-major, after conversion to `dtype` on the CPU) into `dst`.
MR_API int mr_copy_to(mr_tensor h, int dtype, void* dst, int64_t nbytes) {
  return run([&] {
    auto t = T(h).detach().to(at::kCPU, static_cast<at::ScalarType>(dtype)).contiguous();
    if (static_cast<int64_t>(t.nbytes()) != nbytes)
      throw std::invalid_argument("destination has " + std::to_string(nbytes) + " bytes, tensor needs " +
                                  std::to_string(t.nbytes()));
    if (nbytes > 0) std::memcpy(dst, t.data_ptr(), nbytes);
  });
}
// Pointer to the first element of a contiguous CPU tensor (nullptr + error otherwise).
MR_API void* mr_data_ptr(mr_tensor h) {
  return guard([&]() -> void* {
    const auto& t = T(h);
    if (!t.device().is_cpu()) throw std::invalid_argument("data_ptr needs a CPU tensor, got " + t.device().str());
    if (!t.is_contiguous()) throw std::invalid_argument("data_ptr needs a contiguous tensor");
    return t.data_ptr();
  }, static_cast<void*>(nullptr));
}
MR_API int mr_item(mr_tensor h, double* d, int64_t* i) {
  return run([&] {
    auto s = T(h).item();
    if (s.isIntegral(true)) { *i = s.toLong(); *d = static_cast<double>(*i); }
    else { *d = s.toDouble(); *i = static_cast<int64_t>(*d); }
  });
}
MR_API mr_tensor mr_to(mr_tensor h, int dtype, int dt, int di, int copy) {
  return wrap([&] {
    return T(h).to(device(dt, di), static_cast<at::ScalarType>(dtype), /*non_blocking=*/false, copy != 0);
  });
}
MR_API mr_tensor mr_alias(mr_tensor h) { return wrap([&] { return T(h); }); }
MR_API char* mr_to_string(mr_tensor h) {
  return guard([&]() -> char* {
    std::ostringstream os;
    os << T(h);
    return strdup(os.str().c_str());
  }, static_cast<char*>(nullptr));
}
MR_API void mr_free_string(char* s) { std::free(s); }

// ---- autograd ------------------------------------------------------------------------------------------------
MR_API int mr_requires_grad(mr_tensor h) { return guard([&] { return T(h).requires_grad() ? 1 : 0; }, -1); }
MR_API int mr_set_requires_grad(mr_tensor h, int on) {
  return run([&] { const_cast<at::Tensor&>(T(h)).requires_grad_(on != 0); });
}
MR_API mr_tensor mr_grad(mr_tensor h) {
  // Returns nullptr without error when the tensor has no gradient yet.
  return guard([&]() -> mr_tensor {
    auto g = T(h).grad();
    return g.defined() ? new at::Tensor(g) : nullptr;
  }, static_cast<mr_tensor>(nullptr));
}
MR_API int mr_set_grad(mr_tensor h, mr_tensor g) {
  return run([&] { const_cast<at::Tensor&>(T(h)).mutable_grad() = g ? *g : at::Tensor(); });
}
MR_API int mr_backward(mr_tensor h, mr_tensor grad, int retain_graph, int create_graph) {
  return run([&] {
    T(h).backward(grad ? *grad : at::Tensor(), retain_graph ? c10::optional<bool>(true) : c10::nullopt,
                  create_graph != 0);
  });
}
// Replaces the data of `h` with that of `src` keeping the tensor object (PyTorch's `param.data = ...`).
MR_API int mr_set_data(mr_tensor h, mr_tensor src) { return run([&] { const_cast<at::Tensor&>(T(h)).set_data(T(src)); }); }
MR_API mr_tensor mr_detach(mr_tensor h) { return wrap([&] { return T(h).detach(); }); }
MR_API int mr_is_leaf(mr_tensor h) { return guard([&] { return T(h).is_leaf() ? 1 : 0; }, -1); }

MR_API int mr_grad_enabled() { return guard([&] { return c10::GradMode::is_enabled() ? 1 : 0; }, -1); }
MR_API void mr_set_grad_enabled(int on) { guard([&] { c10::GradMode::set_enabled(on != 0); return 0; }, 0); }
MR_API void* mr_inference_mode_enter() {
  return guard([&]() -> void* { return new c10::InferenceMode(true); }, static_cast<void*>(nullptr));
}
MR_API void mr_inference_mode_exit(void* guard_ptr) {
  guard([&] { delete static_cast<c10::InferenceMode*>(guard_ptr); return 0; }, 0);
}
MR_API int mr_is_inference(mr_tensor h) { return guard([&] { return T(h).is_inference() ? 1 : 0; }, -1); }

// ---- global state --------------------------------------------------------------------------------------------
MR_API int mr_manual_seed(uint64_t seed) {
  return run([&] {
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    if (at::hasCUDA()) {
      for (int i = 0; i < static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()); ++i) {
        auto gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_current_seed(seed);
      }
    }
  });
}
// State of a device's default random generator as a uint8 CPU tensor (torch.get_rng_state / set_rng_state), so a
// resumed training run continues the same random stream.
static at::Generator default_generator(int dt, int di) {
  return dt == 0 ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device(dt, di));
}
// Reading or replacing a generator's state needs its lock (random kernels take it while they draw).
static at::Tensor locked_state(at::Generator gen) {  // a handle: copies share the generator
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
static void locked_set_state(at::Generator gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}
MR_API mr_tensor mr_get_rng_state(int dt, int di) { return wrap([&] { return locked_state(default_generator(dt, di)); }); }
MR_API int mr_set_rng_state(int dt, int di, mr_tensor state) {
  return run([&] { locked_set_state(default_generator(dt, di), T(state)); });
}
// Private generators: a clone of the device's default generator (so CPU and CUDA work alike), reseeded, with its
// own state; random ops given one draw from it instead of the process-wide default.
MR_API mr_generator mr_generator_new(int dt, int di, uint64_t seed) {
  return guard([&]() -> mr_generator {
    auto base = default_generator(dt, di);
    at::Generator copy;
    {
      std::lock_guard<std::mutex> lock(base.mutex());
      copy = base.clone();
    }
    copy.set_current_seed(seed);
    return new at::Generator(std::move(copy));
  }, static_cast<mr_generator>(nullptr));
}
MR_API void mr_generator_free(mr_generator g) { guard([&] { delete g; return 0; }, 0); }
static at::Generator& G(mr_generator g) {
  if (g == nullptr) throw std::invalid_argument("generator handle is null (disposed generator?)");
  return *g;
}
MR_API mr_tensor mr_generator_get_state(mr_generator g) { return wrap([&] { return locked_state(G(g)); }); }
MR_API int mr_generator_set_state(mr_generator g, mr_tensor state) { return run([&] { locked_set_state(G(g), T(state)); }); }
MR_API void mr_set_num_threads(int n) { guard([&] { at::set_num_threads(n); return 0; }, 0); }
MR_API int mr_get_num_threads() { return guard([&] { return at::get_num_threads(); }, -1); }
MR_API int mr_cuda_device_count() {
  return guard([&] { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()) : 0; }, 0);
}
MR_API char* mr_config_string() {
  return guard([&]() -> char* { return strdup(at::show_config().c_str()); }, static_cast<char*>(nullptr));
}
