// Row gathers: the token embedding lookup (out[t] = table[token_ids[t]]) and gather_rows
// (out[i] = x[rows[i]]), rows of T (bf16 or fp16) copied unchanged.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::embedding {

template <typename T>
struct GatherParams {
  const T* src;         // [src_rows, cols], T
  const int32_t* rows;  // [num_rows], int32, device; each in [0, src_rows) (checked by the caller)
  T* out;               // [num_rows, cols], T
  int64_t num_rows;
  int64_t cols;
};

// One block per gathered row. Enqueues on `stream`; returns the launch's error. Thread-safe.
// The embedding lookup is this gather with rows = the step's token ids.
template <typename T>
cudaError_t gather_rows_cuda(const GatherParams<T>& p, cudaStream_t stream);

extern template cudaError_t gather_rows_cuda<__nv_bfloat16>(const GatherParams<__nv_bfloat16>&,
                                                            cudaStream_t);
extern template cudaError_t gather_rows_cuda<__half>(const GatherParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::embedding
