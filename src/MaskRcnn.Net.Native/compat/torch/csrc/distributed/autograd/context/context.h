// Stand-in for a header Debian's libtorch-dev 1.13 leaves out (it ships c10d's reducer.hpp, which includes this one,
// but not torch/csrc/distributed/autograd/). reducer.hpp only names two types from it: the gradient callback type
// (checked to equal its own std::function) and a shared_ptr to the distributed-autograd context, held as a member.
// Neither is used by the shim; a shared_ptr's and an atomic pointer's sizes do not depend on the pointee, so the
// Reducer's layout is the library's. Used only when the real header is missing (see CMakeLists.txt).
#pragma once

#include <ATen/ATen.h>
#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
