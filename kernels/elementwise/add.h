// Residual add in place: acc += x, float32 math, bf16 storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::elementwise {

struct AddParams {
  __nv_bfloat16* acc;      // [n], bf16, accumulated into
  const __nv_bfloat16* x;  // [n], bf16
  int64_t n;
};

// Enqueues on `stream`; returns the launch's error. Thread-safe.
cudaError_t add_cuda(const AddParams& p, cudaStream_t stream);

}  // namespace quilt::kernels::elementwise
