// Sizes of the engine's paged memory (KV blocks, adapter pages, slots, context) from the model's
// shape and the flags. One function holds the arithmetic, so that it is tested on 8B- and
// 70B-shaped configs without loading weights.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "engine/model/model_config.h"

namespace quilt::engine {

// Defaults when a flag is not given.
inline constexpr int32_t kDefaultMaxLoraRank = 128;
inline constexpr int32_t kDefaultMaxLoras = 64;
// The adapter pool (cpu's separate one, or the part of the default explicit budget on cuda
// without --gpu-memory-fraction) holds at least this many all-module adapters of this rank.
inline constexpr int32_t kDefaultPoolAdapters = 4;
inline constexpr int32_t kDefaultPoolAdapterRank = 64;
inline constexpr int64_t kMinDefaultLoraPoolBytes = int64_t{256} << 20;

struct MemoryRequest {
  int64_t elem_bytes = 4;   // bytes of the compute dtype (cpu: float32; cuda: fp16/bf16)
  int32_t block_size = 16;  // tokens per KV block
  // One pool for KV blocks and adapter pages (cuda; cpu tests), else two (cpu).
  bool unified = false;
  // Unified with a fraction > 0: the pool is fraction * device_total - device_used, where
  // device_used is what the weights, activations and runtime already took.
  double gpu_memory_fraction = 0;
  int64_t device_total_bytes = 0;
  int64_t device_used_bytes = 0;
  // Explicit sizes; 0 takes the default. Separate pools: the KV cache and the adapter pool.
  // Unified without a fraction: the pool is their sum.
  int64_t kv_cache_bytes = 0;
  int64_t lora_pool_bytes = 0;
  int32_t max_loras = 0;
  int32_t max_lora_rank = 0;
  int64_t max_model_len = 0;
};

struct MemoryPlan {
  int64_t kv_block_bytes = 0;   // K and V of block_size tokens in every layer
  int64_t kv_token_bytes = 0;   // K and V of one token in every layer
  // Adapter weights are paged in pages of page_elems elements. Unified: a page is the K (or the
  // V) of one block of one layer, block_size * kv_dim elements, so a KV block of one layer is two
  // pages and an engine KV block (every layer) is pages_per_block = 2 * layers of them.
  // Separate: a page is hidden_size elements (S-LoRA's), pages_per_block 1.
  int64_t page_elems = 0;
  int32_t pages_per_block = 1;
  int32_t num_blocks = 0;   // KV blocks (unified: the pool's units, shared with adapters)
  int32_t lora_pages = 0;   // separate pool only: its pages
  int64_t pool_bytes = 0;   // the paged memory in all (KV and adapters)
  int32_t max_loras = 0;
  int32_t max_lora_rank = 0;
  int64_t max_model_len = 0;
  int64_t max_rank_adapter_bytes = 0;  // one adapter of max_lora_rank on every module, in pages
  // Tokens the KV cache holds when no adapter takes room.
  int64_t kv_tokens() const { return static_cast<int64_t>(num_blocks) * (kv_block_bytes / kv_token_bytes); }
};

// Bytes an adapter of `rank` on all seven modules of every layer takes in pages of page_elems.
int64_t adapter_pool_bytes(const ModelConfig& cfg, int32_t rank, int64_t page_elems, int64_t elem_bytes);
// The model's weights in elem_bytes each (embeddings, layers, final norm, LM head unless tied):
// an estimate of device_used for sizing tests and messages.
int64_t model_weight_bytes(const ModelConfig& cfg, int64_t elem_bytes);
// "1.5 GiB", "12 MiB", "512 KiB": sizes in messages.
std::string format_bytes(int64_t bytes);

// Everything sized; a configuration that cannot work is InvalidArgument naming the flag and its
// value (--gpu-memory-fraction, --kv-cache-mb, --lora-pool-mib, --max-lora-rank, --max-loras,
// --max-model-len).
Result<MemoryPlan> plan_memory(const ModelConfig& cfg, const MemoryRequest& req);

}  // namespace quilt::engine
