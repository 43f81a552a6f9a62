// SwiGLU's gate: out = silu(gate) · up, float32 math, T storage (bf16 or fp16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::activation {

template <typename T>
struct SiluMulParams {
  const T* gate;  // [rows, cols] at row stride gate_stride, T
  const T* up;    // [rows, cols] at row stride up_stride, T
  T* out;         // [rows, cols], contiguous, T; may alias gate or up when both strides are cols
  int64_t rows;
  int64_t cols;
  int64_t gate_stride;  // ≥ cols: gate and up may be the two halves of one fused gate/up row
  int64_t up_stride;
};

// Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t silu_mul_cuda(const SiluMulParams<T>& p, cudaStream_t stream);

extern template cudaError_t silu_mul_cuda<__nv_bfloat16>(const SiluMulParams<__nv_bfloat16>&,
                                                         cudaStream_t);
extern template cudaError_t silu_mul_cuda<__half>(const SiluMulParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::activation
