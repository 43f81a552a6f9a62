// Causal attention of a step's query tokens over their sequences' paged KV caches (paged_kv.h),
// prefill chunks and decode tokens in one launch, grouped-query (GQA) heads.
//
// Query token t of sequence s (q_start ≤ t < q_start + q_len) sits at position
// ctx_len - q_len + (t - q_start) and attends to positions [0, that] of s: with chunked prefill the
// earlier chunks are already cached, and this step's own tokens have been stored by kv_store.
// Softmax in float32 with the running-max (online) form; out = Σ softmax(score) · v, where
// score = scale · q·k, or softcap · tanh(scale · q·k / softcap) with soft-capping (Gemma 2).
// With a sliding window w, the query at position p sees only positions j with p - j < w: the
// others are never read, so a long context costs what the window costs.
//
// Split-K ("flash-decoding"): for long contexts the visible span of every query is cut into
// num_partitions pieces, each scored by a block of its own into float32 partial results (the
// running max m, the sum l and the unnormalized Σ exp(s - m) · v), which a second kernel merges.
// plan_split() says when and how far to split.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::attention {

// One sequence of the step (engine StepLayout::Sequence, less num_blocks).
struct AttentionSeq {
  int32_t q_start;       // first query row of the sequence in the step
  int32_t q_len;         // query rows this step
  int32_t ctx_len;       // cached positions once this step's own are written
  int32_t block_offset;  // into block_tables
};

template <typename T>
struct PagedAttentionParams {
  const T* q;        // [num_tokens, num_heads * head_dim] at row stride q_stride, T (rotated)
  T* out;            // [num_tokens, num_heads * head_dim], T
  const T* k_cache;  // [num_blocks, block_size, num_kv_heads * head_dim], T
  const T* v_cache;  // same shape
  const int32_t* token_seq;      // [num_tokens], int32, device: the sequence of each query row
  const AttentionSeq* seqs;      // [num_seqs], device
  const int32_t* block_tables;   // each sequence's block ids, concatenated, int32, device
  int64_t num_tokens;
  int32_t num_heads;
  int32_t num_kv_heads;  // divides num_heads
  int32_t head_dim;
  int32_t block_size;
  float scale;       // softmax scale, > 0 (Llama's: 1 / sqrt(head_dim))
  int64_t q_stride;  // ≥ num_heads * head_dim: q may be the head of one fused q/k/v row
  float softcap = 0.f;          // > 0: scores are soft-capped at ±softcap before the softmax
  int32_t sliding_window = 0;   // > 0: the window; 0: the whole causal context
  // Split-K: 1 (no split, no workspace) or a plan_split() result with its workspace.
  int32_t num_partitions = 1;
  // The least positions a partition takes, a multiple of kAttentionChunk; each query's pieces
  // grow past it until num_partitions of them cover its whole span.
  int32_t partition_size = 0;
  float* partial_acc = nullptr;  // [num_tokens, num_heads, num_partitions, head_dim], float32
  float* partial_ml = nullptr;   // [num_tokens, num_heads, num_partitions, 2] (m, l), float32
};

// Heads sharing one KV head times head_dim may not exceed this (8 × 128: Llama-3-70B's GQA).
inline constexpr int kMaxGroupWidth = 1024;

// Positions one block scores per pass; partitions are multiples of it.
inline constexpr int kAttentionChunk = 128;
// Spans up to this many positions are not split: one block per (token, KV head) suffices.
inline constexpr int32_t kSplitMinSpan = 1024;
inline constexpr int32_t kMinPartition = 512;
inline constexpr int32_t kMaxPartitions = 64;

struct SplitPlan {
  int32_t num_partitions = 1;
  int32_t partition_size = 0;
  int64_t workspace_floats = 0;  // partial_acc then partial_ml, 0 without a split
};

// How to split a step whose longest visible span (context, or the window where it is shorter) is
// max_span positions: none up to kSplitMinSpan; else pieces of at least kMinPartition positions,
// at most kMaxPartitions of them, and no more than a workspace of max_workspace_floats allows.
SplitPlan plan_split(int32_t max_span, int64_t num_tokens, int32_t num_heads, int32_t head_dim,
                     int64_t max_workspace_floats);

// A plan for steps whose contexts are not known when it is made (a decode step captured into a
// CUDA graph, replayed at later lengths): enough partitions that num_tokens × num_kv_heads ×
// partitions reaches kGraphTargetBlocks, at most kMaxGraphPartitions, pieces of at least
// kMinPartition positions (so a short context uses the first partition only).
inline constexpr int64_t kGraphTargetBlocks = 256;
inline constexpr int64_t kMaxGraphPartitions = 16;
SplitPlan plan_split_any_span(int64_t num_tokens, int32_t num_kv_heads, int32_t num_heads,
                              int32_t head_dim, int64_t max_workspace_floats);

// One block per (query token, KV head, partition): the group of query heads reading that KV head
// share each K/V row it loads; with a split, a second launch merges the partitions. Enqueues on
// `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t paged_attention_cuda(const PagedAttentionParams<T>& p, cudaStream_t stream);

extern template cudaError_t paged_attention_cuda<__nv_bfloat16>(
    const PagedAttentionParams<__nv_bfloat16>&, cudaStream_t);
extern template cudaError_t paged_attention_cuda<__half>(const PagedAttentionParams<__half>&,
                                                         cudaStream_t);

}  // namespace quilt::kernels::attention
