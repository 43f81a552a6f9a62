// RMSNorm over each head_dim-wide chunk of every row, in place: Qwen3's and Gemma 3's q_norm and
// k_norm, applied to the q or k columns of one fused q/k/v output. float32 math, T storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::norm {

template <typename T>
struct RmsNormHeadsParams {
  T* x;             // [rows, num_heads * head_dim] at row stride `stride`, T, normalized in place
  const T* weight;  // [head_dim], T
  int64_t rows;
  int32_t num_heads;
  int32_t head_dim;
  int64_t stride;  // ≥ num_heads * head_dim: x may be a column range of one fused q/k/v row
  float eps;
};

// One block per (row, head). Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t rms_norm_heads_cuda(const RmsNormHeadsParams<T>& p, cudaStream_t stream);

extern template cudaError_t rms_norm_heads_cuda<__nv_bfloat16>(
    const RmsNormHeadsParams<__nv_bfloat16>&, cudaStream_t);
extern template cudaError_t rms_norm_heads_cuda<__half>(const RmsNormHeadsParams<__half>&,
                                                        cudaStream_t);

}  // namespace quilt::kernels::norm
