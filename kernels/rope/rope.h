// Rotary position embedding in place on q and k, HF's rotate_half layout (pairs (i, i + d/2)).
// Angles as the CPU reference computes them: angle = float(pos) · inv_freq[i] in float32, its
// cosine and sine in double, rounded to float, times attention_scaling.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::rope {

struct RopeParams {
  __nv_bfloat16* q;          // [num_tokens, num_q_heads * head_dim], bf16, rotated in place
  __nv_bfloat16* k;          // [num_tokens, num_k_heads * head_dim], bf16, rotated in place
  const int32_t* positions;  // [num_tokens], int32, device
  const float* inv_freq;     // [head_dim / 2], float32, device (engine/model/rope.h's table)
  float attention_scaling;
  int64_t num_tokens;
  int32_t num_q_heads;
  int32_t num_k_heads;
  int32_t head_dim;  // even
};

// One block per token. Enqueues on `stream`; returns the launch's error. Thread-safe.
cudaError_t rope_cuda(const RopeParams& p, cudaStream_t stream);

}  // namespace quilt::kernels::rope
