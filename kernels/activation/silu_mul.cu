// silu(g) · u elementwise: a grid-stride loop, float32 math with the accurate expf.
#include "kernels/activation/silu_mul.h"

#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::activation {
namespace {

using detail::from_float;
using detail::to_float;

template <typename T>
__global__ void silu_mul_kernel(const __grid_constant__ SiluMulParams<T> p) {
  const int64_t n = p.rows * p.cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t r = i / p.cols, c = i % p.cols;
    const float g = to_float(p.gate[r * p.gate_stride + c]);
    p.out[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(p.up[r * p.up_stride + c]));
  }
}

}  // namespace

template <typename T>
cudaError_t silu_mul_cuda(const SiluMulParams<T>& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols < 0 || p.gate_stride < p.cols || p.up_stride < p.cols) {
    return cudaErrorInvalidValue;
  }
  const int64_t n = p.rows * p.cols;
  if (n == 0) return cudaSuccess;
  return launch_kernel<&silu_mul_kernel<T>>(
      LaunchConfig{detail::elementwise_grid(n), dim3(detail::kElementwiseThreads), 0, stream}, p);
}

template cudaError_t silu_mul_cuda<__nv_bfloat16>(const SiluMulParams<__nv_bfloat16>&,
                                                  cudaStream_t);
template cudaError_t silu_mul_cuda<__half>(const SiluMulParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::activation
