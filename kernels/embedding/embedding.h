// Row gathers: the token embedding lookup (out[t] = table[token_ids[t]]) and gather_rows
// (out[i] = x[rows[i]]), bf16 rows copied unchanged.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::embedding {

struct GatherParams {
  const __nv_bfloat16* src;  // [src_rows, cols], bf16
  const int32_t* rows;  // [num_rows], int32, device; each in [0, src_rows) (checked by the caller)
  __nv_bfloat16* out;   // [num_rows, cols], bf16
  int64_t num_rows;
  int64_t cols;
};

// One block per gathered row. Enqueues on `stream`; returns the launch's error. Thread-safe.
// The embedding lookup is this gather with rows = the step's token ids.
cudaError_t gather_rows_cuda(const GatherParams& p, cudaStream_t stream);

}  // namespace quilt::kernels::embedding
