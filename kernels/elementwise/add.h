// Residual add in place: acc += x, float32 math, T storage (bf16 or fp16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::elementwise {

template <typename T>
struct AddParams {
  T* acc;      // [n], T, accumulated into
  const T* x;  // [n], T
  int64_t n;
};

// Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t add_cuda(const AddParams<T>& p, cudaStream_t stream);

extern template cudaError_t add_cuda<__nv_bfloat16>(const AddParams<__nv_bfloat16>&,
                                                    cudaStream_t);
extern template cudaError_t add_cuda<__half>(const AddParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::elementwise
