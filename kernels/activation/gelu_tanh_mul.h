// GeGLU's gate (Gemma): out = gelu_tanh(gate) · up, with GELU's tanh approximation
// ("gelu_pytorch_tanh"): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). float32 math, T storage.
#pragma once

#include "kernels/activation/silu_mul.h"

namespace quilt::kernels::activation {

// The same views as silu_mul: gate and up may be the two halves of one fused gate/up row.
template <typename T>
using GeluTanhMulParams = SiluMulParams<T>;

// Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t gelu_tanh_mul_cuda(const GeluTanhMulParams<T>& p, cudaStream_t stream);

extern template cudaError_t gelu_tanh_mul_cuda<__nv_bfloat16>(
    const GeluTanhMulParams<__nv_bfloat16>&, cudaStream_t);
extern template cudaError_t gelu_tanh_mul_cuda<__half>(const GeluTanhMulParams<__half>&,
                                                       cudaStream_t);

}  // namespace quilt::kernels::activation
