// plan_memory: the arithmetic of KV blocks, adapter pages and the limits derived from them.
#include "engine/memory/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/model/lora_weights.h"
#include "kernels/sgmv/sgmv.h"

namespace quilt::engine {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// "--kv-cache-mb 8", or the exact bytes when the value is not whole MiB (set by a library user).
std::string mib_flag(const char* flag, int64_t bytes) {
  if (bytes % kMiB == 0) return std::string(flag) + " " + std::to_string(bytes / kMiB);
  return std::string(flag) + " (" + std::to_string(bytes) + " bytes)";
}

int32_t clamp_i32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, 0, std::numeric_limits<int32_t>::max()));
}

int64_t default_lora_pool_bytes(const ModelConfig& cfg, int32_t max_rank, int64_t page_elems,
                                int64_t elem_bytes) {
  const int64_t few = kDefaultPoolAdapters *
                      adapter_pool_bytes(cfg, kDefaultPoolAdapterRank, page_elems, elem_bytes);
  const int64_t one_max = adapter_pool_bytes(cfg, max_rank, page_elems, elem_bytes);
  return std::max({kMinDefaultLoraPoolBytes, few, one_max});
}

}  // namespace

int64_t adapter_pool_bytes(const ModelConfig& cfg, int32_t rank, int64_t page_elems, int64_t elem_bytes) {
  int64_t pages = 0;
  for (int p = 0; p < kNumProjections; ++p) {
    const auto proj = static_cast<Projection>(p);
    pages += kernels::sgmv::pages_for_matrix(rank, projection_in_dim(cfg, proj), page_elems) +
             kernels::sgmv::pages_for_matrix(rank, projection_out_dim(cfg, proj), page_elems);
  }
  return pages * cfg.num_layers * page_elems * elem_bytes;
}

int64_t model_weight_bytes(const ModelConfig& cfg, int64_t elem_bytes) {
  const int64_t h = cfg.hidden_size;
  const int64_t layer = h * cfg.q_dim() * 2 + h * cfg.kv_dim() * 2 + h * cfg.intermediate_size * 3 + 2 * h;
  const int64_t embeddings = cfg.vocab_size * h * (cfg.tie_word_embeddings ? 1 : 2);
  return (layer * cfg.num_layers + embeddings + h) * elem_bytes;
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (std::fabs(v) >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  if (u == 0) std::snprintf(buf, sizeof(buf), "%lld bytes", static_cast<long long>(bytes));
  else std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
  return buf;
}

Result<MemoryPlan> plan_memory(const ModelConfig& cfg, const MemoryRequest& req) {
  MemoryPlan plan;
  if (req.block_size < 1) return Status::InvalidArgument("block size: must be at least 1");
  if (req.elem_bytes < 1 || cfg.num_layers < 1 || cfg.kv_dim() < 1 || cfg.hidden_size < 1) {
    return Status::InvalidArgument("memory plan: the model has no layers or no width");
  }
  plan.max_lora_rank = req.max_lora_rank > 0 ? req.max_lora_rank : kDefaultMaxLoraRank;
  if (req.max_lora_rank < 0) {
    return Status::InvalidArgument("--max-lora-rank " + std::to_string(req.max_lora_rank) + ": must be at least 1");
  }
  plan.max_loras = req.max_loras > 0 ? req.max_loras : kDefaultMaxLoras;
  if (req.max_loras < 0) {
    return Status::InvalidArgument("--max-loras " + std::to_string(req.max_loras) + ": must be at least 1");
  }
  const int64_t context = cfg.max_position_embeddings;
  plan.max_model_len = req.max_model_len > 0 ? req.max_model_len : context;
  if (req.max_model_len < 0 || (context > 0 && req.max_model_len > context)) {
    return Status::InvalidArgument("--max-model-len " + std::to_string(req.max_model_len) +
                                   ": must be in [1, " + std::to_string(context) +
                                   "], the model's context (max_position_embeddings in config.json)");
  }

  plan.kv_token_bytes = 2 * cfg.num_layers * cfg.kv_dim() * req.elem_bytes;
  plan.kv_block_bytes = plan.kv_token_bytes * req.block_size;
  const std::string rank_note = "one adapter of rank " + std::to_string(plan.max_lora_rank) +
                                " (--max-lora-rank) on every module";

  if (!req.unified) {
    plan.page_elems = cfg.hidden_size;
    plan.pages_per_block = 1;
    const int64_t kv = req.kv_cache_bytes > 0 ? req.kv_cache_bytes : 256 * kMiB;
    if (kv < plan.kv_block_bytes) {
      return Status::InvalidArgument(mib_flag("--kv-cache-mb", kv) + ": smaller than one KV block (" +
                                     format_bytes(plan.kv_block_bytes) + ")");
    }
    plan.num_blocks = clamp_i32(kv / plan.kv_block_bytes);
    const int64_t lora = req.lora_pool_bytes > 0
                             ? req.lora_pool_bytes
                             : default_lora_pool_bytes(cfg, plan.max_lora_rank, plan.page_elems, req.elem_bytes);
    plan.max_rank_adapter_bytes = adapter_pool_bytes(cfg, plan.max_lora_rank, plan.page_elems, req.elem_bytes);
    const int64_t page_bytes = plan.page_elems * req.elem_bytes;
    plan.lora_pages = clamp_i32(lora / page_bytes);
    if (static_cast<int64_t>(plan.lora_pages) * page_bytes < plan.max_rank_adapter_bytes) {
      return Status::InvalidArgument(mib_flag("--lora-pool-mib", lora) + ": smaller than " + rank_note +
                                     " of this model (" + format_bytes(plan.max_rank_adapter_bytes) +
                                     "); raise it or lower --max-lora-rank");
    }
    plan.pool_bytes = static_cast<int64_t>(plan.num_blocks) * plan.kv_block_bytes +
                      static_cast<int64_t>(plan.lora_pages) * page_bytes;
    return plan;
  }

  // One pool: a page is the K (or V) of one block of one layer, so that a KV block's memory and
  // adapter pages are interchangeable; an engine block (every layer) is 2 * layers pages.
  plan.page_elems = static_cast<int64_t>(req.block_size) * cfg.kv_dim();
  plan.pages_per_block = clamp_i32(2 * cfg.num_layers);
  const int64_t adapter_pages_bytes = adapter_pool_bytes(cfg, plan.max_lora_rank, plan.page_elems, req.elem_bytes);
  const int64_t adapter_blocks = (adapter_pages_bytes + plan.kv_block_bytes - 1) / plan.kv_block_bytes;
  plan.max_rank_adapter_bytes = adapter_blocks * plan.kv_block_bytes;
  // The least that can serve: one adapter of the largest rank beside one KV block.
  const int64_t need = plan.max_rank_adapter_bytes + plan.kv_block_bytes;
  int64_t budget = 0;
  if (req.gpu_memory_fraction != 0) {
    const double f = req.gpu_memory_fraction;
    char value[32];
    std::snprintf(value, sizeof(value), "%g", f);
    const std::string flag = std::string("--gpu-memory-fraction ") + value;
    if (!(f > 0 && f <= 1)) return Status::InvalidArgument(flag + ": must be in (0, 1]");
    if (req.device_total_bytes <= 0) return Status::InvalidArgument(flag + ": the device reported no memory");
    const auto share = static_cast<int64_t>(f * static_cast<double>(req.device_total_bytes));
    budget = share - req.device_used_bytes;
    if (budget < need) {
      return Status::InvalidArgument(
          flag + ": " + format_bytes(share) + " of the device's " + format_bytes(req.device_total_bytes) +
          (budget <= 0 ? " does not even hold the model's weights and activations ("
                       : " leaves too little beside the model's weights and activations (") +
          format_bytes(req.device_used_bytes) + "); the KV cache and adapters need at least " +
          format_bytes(need) + " (one KV block and " + rank_note + ")");
    }
  } else {
    const int64_t kv = req.kv_cache_bytes > 0 ? req.kv_cache_bytes : 256 * kMiB;
    const int64_t lora = req.lora_pool_bytes > 0
                             ? req.lora_pool_bytes
                             : default_lora_pool_bytes(cfg, plan.max_lora_rank, plan.page_elems, req.elem_bytes);
    budget = kv + lora;
    if (budget < need) {
      return Status::InvalidArgument(mib_flag("--kv-cache-mb", kv) + " with " + mib_flag("--lora-pool-mib", lora) +
                                     ": the pool (" + format_bytes(budget) + ") is smaller than one KV block and " +
                                     rank_note + " (" + format_bytes(need) + ")");
    }
  }
  plan.num_blocks = clamp_i32(budget / plan.kv_block_bytes);
  plan.pool_bytes = static_cast<int64_t>(plan.num_blocks) * plan.kv_block_bytes;
  return plan;
}

}  // namespace quilt::engine
