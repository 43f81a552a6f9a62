// The kernel behind silu_mul and gelu_tanh_mul: out = act(gate) · up elementwise, a grid-stride
// loop with float32 math; `Act` is a functor float -> float (the only thing the two differ in).
#pragma once

#include "kernels/activation/silu_mul.h"
#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::activation::detail {

template <typename T, typename Act>
__global__ void gated_mul_kernel(const __grid_constant__ SiluMulParams<T> p) {
  const int64_t n = p.rows * p.cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t r = i / p.cols, c = i % p.cols;
    const float g = kernels::detail::to_float(p.gate[r * p.gate_stride + c]);
    p.out[i] = kernels::detail::from_float<T>(Act{}(g) *
                                              kernels::detail::to_float(p.up[r * p.up_stride + c]));
  }
}

// Checks the views and enqueues the kernel on `stream`.
template <typename T, typename Act>
cudaError_t gated_mul_cuda(const SiluMulParams<T>& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols < 0 || p.gate_stride < p.cols || p.up_stride < p.cols) {
    return cudaErrorInvalidValue;
  }
  const int64_t n = p.rows * p.cols;
  if (n == 0) return cudaSuccess;
  return launch_kernel<&gated_mul_kernel<T, Act>>(
      LaunchConfig{kernels::detail::elementwise_grid(n),
                   dim3(kernels::detail::kElementwiseThreads), 0, stream},
      p);
}

}  // namespace quilt::kernels::activation::detail
