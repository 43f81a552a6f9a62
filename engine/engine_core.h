// Engine::Core: the state only the engine thread touches. Private to engine/.
#pragma once

#include <memory>
#include <vector>

#include "engine/engine.h"
#include "engine/lora/adapter_slots.h"
#include "engine/memory/page_allocator.h"
#include "engine/model/llama_model.h"
#include "engine/scheduler/scheduler.h"

namespace quilt::engine {

struct Engine::Core {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<PageAllocator> kv_blocks;
  std::unique_ptr<AdapterSlots> adapters;
  std::unique_ptr<Scheduler> scheduler;
  std::vector<SampleSpec> specs;      // this step's, one per sampling row
  std::vector<SampledToken> sampled;  // what Backend::sample gave for them
  std::vector<float> logits;          // one captured logit row (Request::capture_logits)
};

}  // namespace quilt::engine
