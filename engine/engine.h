// The engine: one thread that batches every request onto one model, whatever its adapter.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "engine/backend/backend.h"
#include "engine/memory/memory_plan.h"
#include "engine/model/model_config.h"
#include "engine/request.h"
#include "engine/tokenizer/tokenizer.h"

namespace quilt::engine {

struct StepPlan;  // engine/scheduler/scheduler.h

// Where adapter pages live: in the KV cache's memory, one pool whose blocks the engine lends to
// adapters (S-LoRA's unified paging), or in a pool of their own.
enum class PoolLayout { kAuto, kUnified, kSeparate };  // kAuto: unified on cuda, separate on cpu

// Sizes left at 0 are computed from the model (engine/memory/memory_plan.h); Engine::options()
// answers the values in use.
struct EngineOptions {
  std::string device = "cpu";
  DType dtype = DType::kF16;            // cuda: fp16 or bf16 storage (make_backend); cpu: float32
  // --quantize: the base model's matrices as int8 with per-row scales (cpu only).
  WeightQuantization quantization = WeightQuantization::kNone;
  // cpu: compute threads of the process-wide pool (GEMMs, attention, ...); 0: every core the
  // process may run on. The pool is per process: the last engine created sets it.
  int32_t threads = 0;
  int32_t max_step_tokens = 512;        // tokens per step (prefill chunks + decodes)
  int32_t max_running = 64;             // sequences in flight
  int32_t block_size = 16;              // tokens per KV block
  // Separate pools: the KV cache (float32 on cpu). Unified without gpu_memory_fraction: the pool
  // is kv_cache_bytes + lora_pool_bytes.
  int64_t kv_cache_bytes = 256 << 20;
  int32_t max_adapter_slots = 64;       // --max-loras: adapters resident at once
  int32_t max_lora_rank = 128;          // --max-lora-rank
  int64_t lora_pool_bytes = 0;          // --lora-pool-mib; 0: a few rank-64 adapters, >= 256 MiB
  // cuda, unified: > 0 sizes the one pool as this share of the device's memory less what the
  // weights and activations took (--gpu-memory-fraction); 0: the explicit sizes above.
  double gpu_memory_fraction = 0;
  PoolLayout pool_layout = PoolLayout::kAuto;
  // Longest prompt + max_tokens a request may ask for (--max-model-len); 0: the model's context.
  int32_t max_model_len = 0;
  int32_t max_waiting = 4096;           // requests queued for admission, all tenants (503 beyond)
  int32_t max_in_flight_per_tenant = 1024;  // requests of one tenant queued or running (429 beyond)
  // Adapter loads overlap compute and start while their requests wait (false: each load finishes
  // before the engine goes on, the reference path tests compare against).
  bool async_adapter_loads = true;
  // cuda: decode steps replay CUDA graphs captured per padded batch size (false: every step runs
  // op by op; quilt serve --cuda-graphs off).
  bool decode_graphs = true;
};

struct EngineStats {
  uint64_t steps = 0;
  uint64_t tokens_computed = 0;   // prefill + decode tokens through the model
  uint64_t tokens_generated = 0;
  int32_t waiting = 0;
  int32_t running = 0;
  int32_t kv_blocks_used = 0;   // by sequences' K/V
  int32_t kv_blocks_total = 0;  // unified: the pool's blocks, KV and adapters together
  int32_t adapter_blocks = 0;   // unified: pool blocks lent to resident adapters
  int32_t adapters_resident = 0;
  int32_t last_batch_tokens = 0;
  uint64_t preemptions = 0;        // sequences sent back to recompute for lack of KV blocks
  uint64_t out_of_memory_finishes = 0;  // sequences ended (length) filling the whole cache alone
  uint64_t adapter_loads = 0;      // adapters copied into the page pool
  uint64_t adapter_evictions = 0;  // idle adapters dropped to make room
  uint64_t adapter_prefetches = 0;  // of adapter_loads, those started while their request waited
  uint64_t adapter_load_waits = 0;  // steps ordered after a load they read (stream-side on cuda)
  uint64_t graph_captures = 0;      // decode graphs captured (cuda)
  uint64_t graph_replays = 0;       // decode steps run by replaying one
  uint64_t graph_fallbacks = 0;     // decode steps that ran op by op with graphs on (not captures)
  double step_seconds_total = 0;   // wall time spent in model steps
  size_t deadlines_tracked = 0;    // live requests with a deadline (finished ones hold none)
  // The adapters (names without "@version", each once, sorted) of the running and of the waiting
  // requests: the inference gateway's vllm:lora_requests_info routes by them.
  std::vector<std::string> running_adapters;
  std::vector<std::string> waiting_adapters;
};

class Engine {
 public:
  // Loads the model directory (config, tokenizer, weights) onto options.device and starts the
  // engine thread.
  static Result<std::unique_ptr<Engine>> create(const std::filesystem::path& model_dir,
                                                const EngineOptions& options);
  ~Engine();  // stops the thread; requests still in flight get a kAborted final event

  // --- thread-safe ---
  // Validates and queues `request`. A request that can never run (prompt + max_tokens over
  // max_model_len, a prompt that with one block more cannot fit the whole KV cache beside its
  // adapter, an adapter too large for the pool, bad sampling values) is refused here
  // (InvalidArgument), as is one over the queue bounds (ResourceExhausted for its tenant's bound,
  // Unavailable for the global one); then no event is ever sent. Otherwise events follow on the
  // engine thread until one is final.
  Status submit(Request request);
  // Aborts a queued or running request: its memory is freed at the next step boundary and it
  // gets a final kAborted event. Unknown ids are ignored.
  void cancel(uint64_t request_id);
  EngineStats stats() const;
  // Drops the device copies of adapters named `name` or `name@<version>` (LoraWeights::name) at
  // the next step boundary; copies in use by running requests stay until those finish.
  void evict_adapter(const std::string& name);
  // LoraWeights::name of every adapter in device memory, as of the last step boundary.
  std::vector<std::string> resident_adapters() const;

  // Constant after construction.
  const ModelConfig& config() const { return config_; }
  // The longest prompt + max_tokens accepted: the model's context or --max-model-len.
  int64_t max_model_len() const { return max_model_len_; }
  // The paged memory's sizes as planned at load.
  const MemoryPlan& memory_plan() const { return plan_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const EngineOptions& options() const { return options_; }
  // The dtype activations and adapter weights are computed in (float32 on cpu).
  DType compute_dtype() const { return compute_dtype_; }

 private:
  struct Core;  // engine-thread state: backend, model, KV blocks, adapters, scheduler
  Engine() = default;
  void run();
  void run_step(StepPlan& plan);
  void prefetch_adapters();
  void publish_stats();
  Status validate(const Request& r) const;

  // Constant after construction.
  EngineOptions options_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Core> core_;
  int32_t kv_blocks_total_ = 0;
  int64_t max_model_len_ = 0;
  bool unified_pool_ = false;
  MemoryPlan plan_;
  DType compute_dtype_ = DType::kF32;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Request> inbox_;          // guarded by mu_
  std::vector<uint64_t> cancels_;       // guarded by mu_
  std::vector<std::string> evictions_;  // guarded by mu_
  std::vector<std::string> resident_;   // guarded by mu_
  std::map<std::string, int32_t> in_flight_;  // guarded by mu_: per tenant, submitted and not final
  bool stopping_ = false;               // guarded by mu_
  EngineStats stats_;                   // guarded by mu_
  std::thread thread_;
};

}  // namespace quilt::engine
