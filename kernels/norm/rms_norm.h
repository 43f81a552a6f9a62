// RMSNorm over rows: out = weight · x / sqrt(mean(x²) + eps), float32 math, bf16 storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::norm {

struct RmsNormParams {
  const __nv_bfloat16* x;       // [rows, cols], bf16
  const __nv_bfloat16* weight;  // [cols], bf16
  __nv_bfloat16* out;           // [rows, cols], bf16; may alias x
  int64_t rows;
  int64_t cols;
  float eps;
};

// One block per row. Enqueues on `stream`; returns the launch's error. Thread-safe.
cudaError_t rms_norm_cuda(const RmsNormParams& p, cudaStream_t stream);

}  // namespace quilt::kernels::norm
