// Causal attention of a step's query tokens over their sequences' paged KV caches (paged_kv.h),
// prefill chunks and decode tokens in one launch, grouped-query (GQA) heads.
//
// Query token t of sequence s (q_start ≤ t < q_start + q_len) sits at position
// ctx_len - q_len + (t - q_start) and attends to positions [0, that] of s: with chunked prefill the
// earlier chunks are already cached, and this step's own tokens have been stored by kv_store.
// Softmax in float32 with the running-max (online) form; out = Σ softmax(q·k / √d) · v.
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
  float scale;       // 1 / sqrt(head_dim)
  int64_t q_stride;  // ≥ num_heads * head_dim: q may be the head of one fused q/k/v row
};

// Heads sharing one KV head times head_dim may not exceed this (8 × 128: Llama-3-70B's GQA).
inline constexpr int kMaxGroupWidth = 1024;

// One block per (query token, KV head): the group of query heads reading that KV head share each
// K/V row it loads. Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t paged_attention_cuda(const PagedAttentionParams<T>& p, cudaStream_t stream);

extern template cudaError_t paged_attention_cuda<__nv_bfloat16>(
    const PagedAttentionParams<__nv_bfloat16>&, cudaStream_t);
extern template cudaError_t paged_attention_cuda<__half>(const PagedAttentionParams<__half>&,
                                                         cudaStream_t);

}  // namespace quilt::kernels::attention
