// Residual add: a grid-stride loop, each element read and written once.
#include "kernels/elementwise/add.h"

#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::elementwise {
namespace {

using detail::from_float;
using detail::to_float;

template <typename T>
__global__ void add_kernel(const __grid_constant__ AddParams<T> p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    p.acc[i] = from_float<T>(to_float(p.acc[i]) + to_float(p.x[i]));
  }
}

}  // namespace

template <typename T>
cudaError_t add_cuda(const AddParams<T>& p, cudaStream_t stream) {
  if (p.n < 0) return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  return launch_kernel<&add_kernel<T>>(
      LaunchConfig{detail::elementwise_grid(p.n), dim3(detail::kElementwiseThreads), 0, stream}, p);
}

template cudaError_t add_cuda<__nv_bfloat16>(const AddParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t add_cuda<__half>(const AddParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::elementwise
