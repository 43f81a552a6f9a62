// Engine::Core: the state only the engine thread touches. Private to engine/.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <utility>
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
  std::vector<float> prompt_logits;   // rows downloaded for prompt log-probabilities
  // Deadlines of live requests, earliest first. An entry leaves with its request (retire()), not
  // when its deadline passes: a finished request keeps nothing here.
  std::set<std::pair<std::chrono::steady_clock::time_point, uint64_t>> deadlines;

  // Takes request `id` out of the scheduler and forgets its deadline; null if it is not live.
  std::unique_ptr<Sequence> retire(uint64_t id) {
    std::unique_ptr<Sequence> seq = scheduler->remove(id);
    if (seq && seq->request.deadline) deadlines.erase({*seq->request.deadline, id});
    return seq;
  }
};

}  // namespace quilt::engine
