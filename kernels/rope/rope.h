// Rotary position embedding in place on q and k, HF's rotate_half layout (pairs (i, i + d/2)).
// Angles as the CPU reference computes them: angle = float(pos) · inv_freq[i] in float32, its
// cosine and sine in double, rounded to float, times attention_scaling. LongRoPE: positions at or
// past long_from_position take their angles from long_inv_freq.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::rope {

template <typename T>
struct RopeParams {
  T* q;                      // [num_tokens, num_q_heads * head_dim] at row stride q_stride, T,
                             // rotated in place
  T* k;                      // [num_tokens, num_k_heads * head_dim] at row stride k_stride, T
  const int32_t* positions;  // [num_tokens], int32, device
  const float* inv_freq;     // [head_dim / 2], float32, device (engine/model/rope.h's table)
  const float* long_inv_freq;  // [head_dim / 2], float32, device; read only when
                               // long_from_position > 0
  int64_t long_from_position;  // 0: never
  float attention_scaling;
  int64_t num_tokens;
  int32_t num_q_heads;
  int32_t num_k_heads;
  int32_t head_dim;  // even
  int64_t q_stride;  // ≥ num_q_heads * head_dim: q and k may be column ranges of one q/k/v row
  int64_t k_stride;  // ≥ num_k_heads * head_dim
};

// One block per token. Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t rope_cuda(const RopeParams<T>& p, cudaStream_t stream);

extern template cudaError_t rope_cuda<__nv_bfloat16>(const RopeParams<__nv_bfloat16>&,
                                                     cudaStream_t);
extern template cudaError_t rope_cuda<__half>(const RopeParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::rope
