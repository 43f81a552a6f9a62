// CUDA entry points of the LoRA shrink/expand contract of sgmv.h: T storage (bf16 or fp16),
// float32 accumulation, the rank-sized intermediate v in float32.
//
// One launch serves a whole mixed batch. SGMV when batch.num_segments > 0 (segments of tokens
// sharing a slot, tiling [0, num_tokens) as sgmv.h requires), BGMV otherwise (batch.token_slots,
// one slot per token), exactly as shrink_cpu / expand_cpu decide. The work is cut per segment, on
// the device, not per launch: each segment splits into tiles of kTensorCoreTokens tokens (a
// shorter segment is one tile; a BGMV token is one tile). A tile of a segment of at least
// kTensorCoreTokens tokens runs on tensor cores (WMMA m16n16k16, float accumulate); a tile of a
// shorter segment (decode) runs on CUDA cores; both kinds run side by side in one grid, so decode
// tokens never wait behind a prefill segment of the same launch.
//
// Every pointer inside the Params (weights, batch metadata, x, v, y) is a DEVICE pointer; the plain
// integers are host values. Launchers do no allocation, no synchronization and no host read of
// device memory, so they can be captured in a CUDA graph; they check the host-side arguments,
// enqueue on `stream` (a shrink with split-K enqueues a cudaMemsetAsync of v first) and return the
// first error. Thread-safe: they touch no state of their own (two threads may launch on different
// streams at once).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sgmv/sgmv.h"

namespace quilt::kernels::sgmv {

// Tokens per tile, and the segment length from which tiles go to tensor cores (WMMA's M).
inline constexpr int kTensorCoreTokens = 16;

// Which arithmetic runs the tiles. kAuto is the production choice; the others are for tests and
// benchmarks that want one path on every tile of a launch.
enum class LoraPath : int32_t {
  kAuto = 0,  // tensor cores for tiles of segments of ≥ kTensorCoreTokens tokens, else CUDA cores
  kCudaCores,    // CUDA cores everywhere
  kTensorCores,  // tensor cores everywhere (short segments and BGMV tokens padded to 16 rows)
};

// shrink: v[p][t, j] = Σ_k x[t, k] · A[j, k] for j < rank(slot(t), layer, projs[p]).
// v is FULLY written: 0 for j ≥ rank and for every column of tokens without an adapter.
// Split-K: with split_k > 1 the K range (in_dim) is cut into split_k slices run by different
// blocks, whose partial sums are added into v with float atomics after a cudaMemsetAsync of v to
// zero (same launch sequence on `stream`); the sum order then varies from run to run (results
// differ in the last bits, not more). split_k == 1 writes v with plain stores, deterministically.
// split_k == 0 (auto) splits only launches too small to fill a GPU (decode batches of a few
// tokens).
template <typename T>
struct ShrinkParams {
  PagedLoraWeights<T> weights;  // pool: [num_pages, page_elems], T; page_indices, modules: device
  LoraBatch batch;              // token_slots: [num_tokens]; segment_starts: [num_segments + 1];
                                // segment_slots: [num_segments]; all int32, device
  const T* x;                   // [num_tokens, in_dim], T
  int64_t in_dim;               // ≥ 1; 16-byte loads when in_dim, page_elems are multiples of 8
  int32_t layer;                // < weights.num_layers
  int32_t num_projs;            // 1..kMaxFusedProjs projections that read the same x
  int32_t projs[kMaxFusedProjs];
  float* v[kMaxFusedProjs];  // each [num_tokens, batch.max_rank], float32, fully written (above)
  LoraPath path = LoraPath::kAuto;
  int32_t split_k = 0;  // 0: auto; else the number of K slices (clamped to ceil(in_dim / 64))
};

// Expand fused over projections that read one shrink's output and write side by side into one
// output row (q, k, v of the fused QKV GEMM; gate, up):
//   y[t, col_offset[p] + n] += scale_p · Σ_j v[p][t, j] · Bᵀ_p[j, n]   n < out_dim[p],
// j < rank(slot(t), layer, projs[p]). Rows of tokens without an adapter, and the columns of a
// projection whose module has rank 0, are untouched. Projections' column ranges must not overlap.
template <typename T>
struct ExpandParams {
  PagedLoraWeights<T> weights;  // as in ShrinkParams
  LoraBatch batch;              // as in ShrinkParams
  int32_t layer;                // < weights.num_layers
  int32_t num_projs;            // 1..kMaxFusedProjs
  int32_t projs[kMaxFusedProjs];
  const float* v[kMaxFusedProjs];   // each [num_tokens, batch.max_rank], float32; columns ≥ rank
                                    // never read
  int64_t out_dim[kMaxFusedProjs];  // ≥ 1: Bᵀ_p is rank × out_dim[p]
  int64_t col_offset[kMaxFusedProjs];  // ≥ 0: where projection p's columns start in a row of y
  T* y;                                // [num_tokens, y_row_stride], T, accumulated into
  int64_t y_row_stride;                // ≥ col_offset[p] + out_dim[p] for every p
  LoraPath path = LoraPath::kAuto;
};
// 16-byte accesses when out_dim[p], col_offset[p], y_row_stride and page_elems are multiples of 8;
// otherwise the scalar path, same results.

// A module whose rank exceeds batch.max_rank is clamped to max_rank on the device (v has only
// max_rank columns); the engine must size max_rank from the batch's slots.
// Returns cudaErrorInvalidValue for inconsistent host-side arguments (nothing launched),
// cudaSuccess without a launch when there is nothing to do (no tokens or max_rank 0), else the
// first error of what it enqueued.
template <typename T>
cudaError_t shrink_cuda(const ShrinkParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t expand_cuda(const ExpandParams<T>& p, cudaStream_t stream);

// Instantiated in sgmv_shrink.cu / sgmv_expand.cu for exactly these element types.
extern template cudaError_t shrink_cuda<__nv_bfloat16>(const ShrinkParams<__nv_bfloat16>&,
                                                       cudaStream_t);
extern template cudaError_t shrink_cuda<__half>(const ShrinkParams<__half>&, cudaStream_t);
extern template cudaError_t expand_cuda<__nv_bfloat16>(const ExpandParams<__nv_bfloat16>&,
                                                       cudaStream_t);
extern template cudaError_t expand_cuda<__half>(const ExpandParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::sgmv
