// The paged KV cache layout the attention kernels share, and kv_store, which fills it.
//
// Per layer, K and V are each [num_blocks, block_size, num_kv_heads * head_dim] in bf16; token
// position p of a sequence lives in block block_table[p / block_size], row p % block_size. A step's
// new tokens are written at kv_slots[t] = block * block_size + row before attention reads them.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::attention {

struct KvStoreParams {
  const __nv_bfloat16* k;   // [num_tokens, kv_dim], bf16
  const __nv_bfloat16* v;   // [num_tokens, kv_dim], bf16
  __nv_bfloat16* k_cache;   // [num_slots, kv_dim], bf16 (one layer's K)
  __nv_bfloat16* v_cache;   // [num_slots, kv_dim], bf16 (one layer's V)
  const int32_t* kv_slots;  // [num_tokens], int32, device; each in [0, num_slots)
  int64_t num_tokens;
  int64_t kv_dim;
};

// One block per token. Enqueues on `stream`; returns the launch's error. Thread-safe.
cudaError_t kv_store_cuda(const KvStoreParams& p, cudaStream_t stream);

}  // namespace quilt::kernels::attention
