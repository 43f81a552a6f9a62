// Residual add: a grid-stride loop, each element read and written once.
#include "kernels/elementwise/add.h"

#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::elementwise {
namespace {

using detail::to_bf16;
using detail::to_float;

__global__ void add_kernel(const __grid_constant__ AddParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    p.acc[i] = to_bf16(to_float(p.acc[i]) + to_float(p.x[i]));
  }
}

}  // namespace

cudaError_t add_cuda(const AddParams& p, cudaStream_t stream) {
  if (p.n < 0) return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  return launch_kernel<&add_kernel>(
      LaunchConfig{detail::elementwise_grid(p.n), dim3(detail::kElementwiseThreads), 0, stream}, p);
}

}  // namespace quilt::kernels::elementwise
