// SwiGLU's gate: out = silu(gate) · up, float32 math, bf16 storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::activation {

struct SiluMulParams {
  const __nv_bfloat16* gate;  // [n], bf16
  const __nv_bfloat16* up;    // [n], bf16
  __nv_bfloat16* out;         // [n], bf16; may alias gate or up
  int64_t n;
};

// Enqueues on `stream`; returns the launch's error. Thread-safe.
cudaError_t silu_mul_cuda(const SiluMulParams& p, cudaStream_t stream);

}  // namespace quilt::kernels::activation
