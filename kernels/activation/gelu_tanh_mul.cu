// gelu_tanh(g) · u elementwise: a grid-stride loop, float32 math with the accurate tanhf.
#include "kernels/activation/gelu_tanh_mul.h"

#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::activation {
namespace {

using detail::from_float;
using detail::to_float;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

template <typename T>
__global__ void gelu_tanh_mul_kernel(const __grid_constant__ GeluTanhMulParams<T> p) {
  const int64_t n = p.rows * p.cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t r = i / p.cols, c = i % p.cols;
    const float g = to_float(p.gate[r * p.gate_stride + c]);
    const float gelu = 0.5f * g * (1.0f + tanhf(kSqrt2OverPi * (g + kCubic * g * g * g)));
    p.out[i] = from_float<T>(gelu * to_float(p.up[r * p.up_stride + c]));
  }
}

}  // namespace

template <typename T>
cudaError_t gelu_tanh_mul_cuda(const GeluTanhMulParams<T>& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols < 0 || p.gate_stride < p.cols || p.up_stride < p.cols) {
    return cudaErrorInvalidValue;
  }
  const int64_t n = p.rows * p.cols;
  if (n == 0) return cudaSuccess;
  return launch_kernel<&gelu_tanh_mul_kernel<T>>(
      LaunchConfig{detail::elementwise_grid(n), dim3(detail::kElementwiseThreads), 0, stream}, p);
}

template cudaError_t gelu_tanh_mul_cuda<__nv_bfloat16>(const GeluTanhMulParams<__nv_bfloat16>&,
                                                       cudaStream_t);
template cudaError_t gelu_tanh_mul_cuda<__half>(const GeluTanhMulParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::activation
