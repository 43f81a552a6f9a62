// CUDA entry points of the LoRA shrink/expand contract of sgmv.h: T storage (bf16 or fp16),
// float32 accumulation, the rank-sized intermediate v in float32.
//
// One kernel per family serves both layouts: SGMV when batch.num_segments > 0 (segments of tokens
// sharing a slot), BGMV otherwise (batch.token_slots, one slot per token), exactly as shrink_cpu /
// expand_cpu decide. Every pointer inside the Params (weights, batch metadata, x, v, y) is a DEVICE
// pointer; the plain integers are host values. Launchers do no allocation, no synchronization and
// no host read of device memory, so they can be captured in a CUDA graph; they check the host-side
// arguments, launch on `stream` and return the launch's cudaError_t. Thread-safe: they touch no
// state of their own (two threads may launch on different streams at once).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sgmv/sgmv.h"

namespace quilt::kernels::sgmv {

// How a launch spreads tokens over blocks. The weights a block loads are reused by every token of
// its tile that shares the slot, so a token tile pays off where segments are long (prefill) and
// only costs parallelism where neighbouring tokens have different adapters (decode).
enum class TokenTiling : int32_t {
  kAuto = 0,   // kTokenTile for SGMV batches averaging ≥ kAutoTileMinSegmentLen tokens a segment
  kPerToken,   // one token per block
  kTokenTile,  // kTileTokens consecutive tokens per block
};
inline constexpr int kTileTokens = 8;
inline constexpr int kAutoTileMinSegmentLen = 4;

// shrink: v[p][t, j] = Σ_k x[t, k] · A[j, k] for j < rank(slot(t), layer, projs[p]).
template <typename T>
struct ShrinkParams {
  PagedLoraWeights<T> weights;  // pool: [num_pages, page_elems], T; page_indices, modules: device
  LoraBatch batch;              // token_slots: [num_tokens]; segment_starts: [num_segments + 1];
                                // segment_slots: [num_segments]; all int32, device
  const T* x;                   // [num_tokens, in_dim], T
  int64_t in_dim;               // ≥ 1; vector loads when in_dim, page_elems are multiples of 8
  int32_t layer;                // < weights.num_layers
  int32_t num_projs;            // 1..kMaxFusedProjs projections that read the same x
  int32_t projs[kMaxFusedProjs];
  float* v[kMaxFusedProjs];  // each [num_tokens, batch.max_rank], float32; only (t, j < rank)
                             // of tokens with an adapter is written, everything else untouched
  TokenTiling tiling = TokenTiling::kAuto;
};

// expand: y[t, n] += scale · Σ_j v[t, j] · Bᵀ[j, n] for j < rank(slot(t), layer, proj).
template <typename T>
struct ExpandParams {
  PagedLoraWeights<T> weights;  // as in ShrinkParams
  LoraBatch batch;              // as in ShrinkParams
  const float* v;   // [num_tokens, batch.max_rank], float32; columns ≥ rank never read
  T* y;             // [num_tokens, out_dim], T, accumulated into; rows of tokens without
                    // an adapter (slot -1 or rank 0) untouched
  int64_t out_dim;  // ≥ 1; vector loads when out_dim, page_elems are multiples of 8
  int32_t layer;    // < weights.num_layers
  int32_t proj;     // < weights.num_projs
  TokenTiling tiling = TokenTiling::kAuto;
};

// A module whose rank exceeds batch.max_rank is clamped to max_rank on the device (v has only
// max_rank columns); the engine must size max_rank from the batch's slots.
// Returns cudaErrorInvalidValue for inconsistent host-side arguments (nothing launched),
// cudaSuccess without a launch when there is nothing to do (no tokens or max_rank 0), else the
// launch's error.
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
