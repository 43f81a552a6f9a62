// RMSNorm over rows: out = weight · x / sqrt(mean(x²) + eps), float32 math, T storage (bf16 or
// fp16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::norm {

template <typename T>
struct RmsNormParams {
  const T* x;       // [rows, cols], T
  const T* weight;  // [cols], T
  T* out;           // [rows, cols], T; may alias x
  int64_t rows;
  int64_t cols;
  float eps;
};

// One block per row. Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t rms_norm_cuda(const RmsNormParams<T>& p, cudaStream_t stream);

extern template cudaError_t rms_norm_cuda<__nv_bfloat16>(const RmsNormParams<__nv_bfloat16>&,
                                                         cudaStream_t);
extern template cudaError_t rms_norm_cuda<__half>(const RmsNormParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::norm
