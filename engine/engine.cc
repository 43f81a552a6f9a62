// Engine: loading, request validation, and the engine thread's step loop.
#include "engine/engine.h"

#include <algorithm>

#include "engine/backend/cpu/thread_pool.h"
#include "engine/engine_core.h"
#include "engine/weights/safetensors.h"

namespace quilt::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAborted: return "abort";
    case FinishReason::kError: return "error";
  }
  return "";
}

Result<std::unique_ptr<Engine>> Engine::create(const std::filesystem::path& model_dir,
                                               const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  QUILT_ASSIGN_OR_RETURN(e->config_, load_model_config(model_dir));
  QUILT_ASSIGN_OR_RETURN(e->tokenizer_, Tokenizer::load(model_dir));
  const ModelConfig& cfg = e->config_;

  if (options.max_lora_rank < 1) {
    return Status::InvalidArgument("--max-lora-rank " + std::to_string(options.max_lora_rank) +
                                   ": must be at least 1");
  }
  auto core = std::make_unique<Core>();
  if (options.threads < 0) {
    return Status::InvalidArgument("--threads " + std::to_string(options.threads) +
                                   ": must be at least 1");
  }
  // Only when it changes: resizing drops the pool, which another engine of the process may use.
  if (options.device == "cpu" && options.threads > 0 && cpu::num_threads() != options.threads) {
    cpu::set_num_threads(options.threads);
  }
  QUILT_ASSIGN_OR_RETURN(core->backend,
                         make_backend(options.device, options.dtype, options.quantization));
  Backend& backend = *core->backend;
  {
    // The backend keeps its own copy of the weights; the mapping is dropped after loading.
    QUILT_ASSIGN_OR_RETURN(std::unique_ptr<TensorStore> store, TensorStore::open_dir(model_dir));
    QUILT_ASSIGN_OR_RETURN(core->model, LlamaModel::load(cfg, *store, backend, options.max_step_tokens,
                                                         options.max_lora_rank));
  }

  // Size the paged memory now that the weights and activations took theirs.
  e->compute_dtype_ = backend.compute_dtype();
  const bool unified = options.pool_layout == PoolLayout::kUnified ||
                       (options.pool_layout == PoolLayout::kAuto && options.device.rfind("cuda", 0) == 0);
  MemoryRequest mr;
  mr.elem_bytes = dtype_size(backend.compute_dtype());
  mr.block_size = options.block_size;
  mr.unified = unified;
  mr.kv_cache_bytes = options.kv_cache_bytes;
  mr.lora_pool_bytes = options.lora_pool_bytes;
  mr.max_loras = options.max_adapter_slots;
  mr.max_lora_rank = options.max_lora_rank;
  mr.max_model_len = options.max_model_len;
  if (options.gpu_memory_fraction != 0) {
    if (!unified) {
      return Status::InvalidArgument("--gpu-memory-fraction: sizes the one paged pool of a cuda device; "
                                     "on " + options.device + " use --kv-cache-mb and --lora-pool-mib");
    }
    QUILT_ASSIGN_OR_RETURN(DeviceMemoryInfo mem, backend.memory_info());
    mr.gpu_memory_fraction = options.gpu_memory_fraction;
    mr.device_total_bytes = mem.total_bytes;
    mr.device_used_bytes = mem.total_bytes - mem.free_bytes;
  }
  QUILT_ASSIGN_OR_RETURN(const MemoryPlan plan, plan_memory(cfg, mr));
  e->plan_ = plan;
  e->options_.max_adapter_slots = plan.max_loras;
  e->options_.max_lora_rank = plan.max_lora_rank;
  e->options_.max_model_len = static_cast<int32_t>(std::min<int64_t>(plan.max_model_len, INT32_MAX));
  e->max_model_len_ = plan.max_model_len;
  e->unified_pool_ = unified;

  KvCacheShape kv{static_cast<int32_t>(cfg.num_layers), plan.num_blocks, options.block_size,
                  static_cast<int32_t>(cfg.num_kv_heads), static_cast<int32_t>(cfg.head_dim)};
  QUILT_RETURN_IF_ERROR(backend.init_kv_cache(kv));
  core->kv_blocks = std::make_unique<PageAllocator>(kv.num_blocks);

  // Separate: a LoRA page holds hidden_size values, as in S-LoRA; longer rows span pages.
  // Unified: a page is the K or V of one block of one layer (memory_plan.h), the pool the cache.
  LoraPoolShape pool;
  pool.page_elems = plan.page_elems;
  pool.num_pages = unified ? kv.num_blocks * plan.pages_per_block : plan.lora_pages;
  pool.max_slots = plan.max_loras;
  pool.num_layers = static_cast<int32_t>(cfg.num_layers);
  pool.in_kv_cache = unified;
  AdapterPageSource source;
  if (unified) source = {core->kv_blocks.get(), plan.pages_per_block};
  QUILT_ASSIGN_OR_RETURN(core->adapters, AdapterSlots::create(backend, cfg, pool,
                                                             options.async_adapter_loads, source));

  SchedulerConfig sc{options.max_step_tokens, options.max_running, options.block_size};
  core->scheduler = std::make_unique<Scheduler>(sc, *core->kv_blocks, *core->adapters);
  e->kv_blocks_total_ = kv.num_blocks;
  e->stats_.kv_blocks_total = kv.num_blocks;
  e->core_ = std::move(core);
  e->thread_ = std::thread([raw = e.get()] { raw->run(); });
  return e;
}

Engine::~Engine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status Engine::validate(const Request& r) const {
  const SamplingParams& s = r.sampling;
  if (r.prompt.empty()) return Status::InvalidArgument("prompt: must not be empty");
  for (int32_t id : r.prompt) {
    if (id < 0 || id >= config_.vocab_size) {
      return Status::InvalidArgument("prompt: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                     std::to_string(config_.vocab_size) + ")");
    }
  }
  if (s.max_tokens < 1) return Status::InvalidArgument("max_tokens: must be at least 1");
  if (!(s.temperature >= 0.f)) return Status::InvalidArgument("temperature: must be >= 0");
  if (!(s.top_p > 0.f && s.top_p <= 1.f)) return Status::InvalidArgument("top_p: must be in (0, 1]");
  if (s.top_k < 0) return Status::InvalidArgument("top_k: must be >= 0");
  if (s.logprobs < 0 || s.logprobs > 20) return Status::InvalidArgument("logprobs: must be in [0, 20]");
  QUILT_RETURN_IF_ERROR(validate_logit_adjustments(s, config_.vocab_size));
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  const int64_t total = prompt + s.max_tokens;
  if (total > max_model_len_) {
    const bool model_limit = max_model_len_ == config_.max_position_embeddings;
    return Status::InvalidArgument("prompt: " + std::to_string(prompt) + " tokens + max_tokens " +
                                   std::to_string(s.max_tokens) + " exceed " +
                                   (model_limit ? "the model's context of " : "this server's --max-model-len of ") +
                                   std::to_string(max_model_len_) + " tokens");
  }
  // Admission is by what a request needs now (the scheduler grows it block by block, preempting
  // when memory runs out): only a prompt that with one block more to generate in could not fit
  // the whole cache, beside its adapter's pages in the one pool, can never run.
  int64_t capacity = kv_blocks_total_;
  if (r.adapter && unified_pool_) capacity -= core_->adapters->units_needed(*r.adapter);
  const int64_t kept = prompt + std::min<int64_t>(s.max_tokens - 1, options_.block_size);
  if ((kept + options_.block_size - 1) / options_.block_size > capacity) {
    return Status::InvalidArgument(
        "prompt: " + std::to_string(prompt) + " tokens (and one block more to generate in) can never fit in this "
        "server's KV cache of " + std::to_string(std::max<int64_t>(capacity, 0) * options_.block_size) + " tokens" +
        (r.adapter && unified_pool_ ? " left beside adapter " + r.adapter->name : ""));
  }
  if (r.adapter) {
    const LoraWeights& w = *r.adapter;
    if (static_cast<int64_t>(w.layers.size()) != config_.num_layers) {
      return Status::InvalidArgument("adapter " + w.name + " has " + std::to_string(w.layers.size()) +
                                     " layers; the model has " + std::to_string(config_.num_layers));
    }
    if (w.max_rank() > options_.max_lora_rank) {
      return Status::InvalidArgument("adapter " + w.name + " has rank " + std::to_string(w.max_rank()) +
                                     "; this server serves ranks up to " +
                                     std::to_string(options_.max_lora_rank));
    }
    // units_needed reads only constants of AdapterSlots: safe from this thread.
    if (core_->adapters->units_needed(w) > core_->adapters->num_units()) {
      return Status::InvalidArgument("adapter " + w.name + " is larger than the adapter memory pool");
    }
  }
  return Status::OK();
}

Status Engine::submit(Request request) {
  QUILT_RETURN_IF_ERROR(validate(request));
  if (!request.on_event) return Status::InvalidArgument("request has no event callback");
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status::Unavailable("engine is stopping");
    if (stats_.waiting + static_cast<int32_t>(inbox_.size()) >= options_.max_waiting) {
      return Status::Unavailable("the engine queue is full (" + std::to_string(options_.max_waiting) +
                                 " requests waiting)");
    }
    int32_t& mine = in_flight_[request.tenant];
    if (mine >= options_.max_in_flight_per_tenant) {
      return Status::ResourceExhausted("tenant has " + std::to_string(mine) +
                                       " requests queued or running; the bound is " +
                                       std::to_string(options_.max_in_flight_per_tenant));
    }
    ++mine;
    // The final event, whatever ends the request, gives the tenant's place back.
    request.on_event = [this, tenant = request.tenant, inner = std::move(request.on_event)](const TokenEvent& ev) {
      inner(ev);
      if (!ev.finished) return;
      std::lock_guard lock(mu_);
      if (--in_flight_[tenant] == 0) in_flight_.erase(tenant);
    };
    inbox_.push_back(std::move(request));
  }
  wake_.notify_one();
  return Status::OK();
}

void Engine::cancel(uint64_t request_id) {
  {
    std::lock_guard lock(mu_);
    cancels_.push_back(request_id);
  }
  wake_.notify_one();
}

void Engine::evict_adapter(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    evictions_.push_back(name);
  }
  wake_.notify_one();
}

std::vector<std::string> Engine::resident_adapters() const {
  std::lock_guard lock(mu_);
  return resident_;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace quilt::engine
