// silu(g) · u elementwise: a grid-stride loop, float32 math with the accurate expf.
#include "kernels/activation/silu_mul.h"

#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::activation {
namespace {

using detail::to_bf16;
using detail::to_float;

__global__ void silu_mul_kernel(const __grid_constant__ SiluMulParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    const float g = to_float(p.gate[i]);
    p.out[i] = to_bf16(g / (1.0f + expf(-g)) * to_float(p.up[i]));
  }
}

}  // namespace

cudaError_t silu_mul_cuda(const SiluMulParams& p, cudaStream_t stream) {
  if (p.n < 0) return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  return launch_kernel<&silu_mul_kernel>(
      LaunchConfig{detail::elementwise_grid(p.n), dim3(detail::kElementwiseThreads), 0, stream}, p);
}

}  // namespace quilt::kernels::activation
