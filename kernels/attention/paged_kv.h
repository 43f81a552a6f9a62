// The paged KV cache layout the attention kernels share, and kv_store, which fills it.
//
// Per layer, K and V are each [num_blocks, block_size, num_kv_heads * head_dim] in T (bf16/fp16); token
// position p of a sequence lives in block block_table[p / block_size], row p % block_size. A step's
// new tokens are written at kv_slots[t] = block * block_size + row before attention reads them.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::attention {

template <typename T>
struct KvStoreParams {
  const T* k;               // [num_tokens, kv_dim] at row stride k_stride, T
  const T* v;               // [num_tokens, kv_dim] at row stride v_stride, T
  T* k_cache;               // [num_slots, kv_dim], T (one layer's K)
  T* v_cache;               // [num_slots, kv_dim], T (one layer's V)
  const int32_t* kv_slots;  // [num_tokens], int32, device; each in [0, num_slots)
  int64_t num_tokens;
  int64_t kv_dim;
  int64_t k_stride;  // ≥ kv_dim: k and v may be column ranges of one fused q/k/v row
  int64_t v_stride;
};

// One block per token. Enqueues on `stream`; returns the launch's error. Thread-safe.
template <typename T>
cudaError_t kv_store_cuda(const KvStoreParams<T>& p, cudaStream_t stream);

extern template cudaError_t kv_store_cuda<__nv_bfloat16>(const KvStoreParams<__nv_bfloat16>&,
                                                         cudaStream_t);
extern template cudaError_t kv_store_cuda<__half>(const KvStoreParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::attention
