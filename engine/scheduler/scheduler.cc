// Scheduler: running sequences first (decode, then their remaining prefill), then admission.
#include "engine/scheduler/scheduler.h"

#include <algorithm>

namespace quilt::engine {

Scheduler::Scheduler(const SchedulerConfig& config, PageAllocator& kv_blocks, AdapterSlots& adapters)
    : config_(config), kv_blocks_(kv_blocks), adapters_(adapters) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

bool Scheduler::grow_blocks(Sequence& seq, int32_t tokens) {
  const int32_t need = blocks_for(tokens) - static_cast<int32_t>(seq.blocks.size());
  return need <= 0 || kv_blocks_.allocate(need, seq.blocks);
}

void Scheduler::release(Sequence& seq) {
  kv_blocks_.free(seq.blocks);
  seq.blocks.clear();
  seq.num_computed = 0;
  if (seq.has_adapter_slot) {
    adapters_.release(seq.adapter_slot);
    seq.has_adapter_slot = false;
    seq.adapter_slot = -1;
  }
}

// Frees the newest running sequence's memory; it goes back to the head of the queue and
// recomputes its prompt and generated tokens when it runs again.
void Scheduler::preempt_newest() {
  std::unique_ptr<Sequence> victim = std::move(running_.back());
  running_.pop_back();
  release(*victim);
  ++victim->preemptions;
  ++preemptions_;
  waiting_.push_front(std::move(victim));
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int32_t budget = config_.max_step_tokens;

  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence& seq = *running_[i];
    const int32_t count = std::min(seq.num_uncomputed(), budget);
    if (!grow_blocks(seq, seq.num_computed + count)) {
      // Out of KV blocks: preempt from the newest end (never planned yet: it comes after i).
      // If that is this sequence, it waits too.
      const bool self = (i + 1 == running_.size());
      preempt_newest();
      if (self) break;
      continue;
    }
    plan.items.push_back({&seq, count, seq.num_computed + count == seq.num_tokens()});
    budget -= count;
    ++i;
  }

  // Admission, in order: when the head cannot start, nothing behind it jumps the queue.
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int32_t>(running_.size()) < config_.max_running) {
    Sequence& seq = *waiting_.front();
    if (seq.request.adapter && !seq.has_adapter_slot) {
      Result<int32_t> slot = adapters_.acquire(seq.request.adapter);
      if (!slot.ok()) break;  // no room for the adapter until running requests finish
      seq.adapter_slot = *slot;
      seq.has_adapter_slot = true;
    }
    const int32_t count = std::min(seq.num_uncomputed(), budget);
    if (!grow_blocks(seq, count)) {
      release(seq);
      break;
    }
    plan.items.push_back({&seq, count, count == seq.num_tokens()});
    budget -= count;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return plan;
}

std::vector<uint64_t> Scheduler::live_ids() const {
  std::vector<uint64_t> ids;
  for (const auto& s : running_) ids.push_back(s->request.id);
  for (const auto& s : waiting_) ids.push_back(s->request.id);
  return ids;
}

std::unique_ptr<Sequence> Scheduler::remove(uint64_t request_id) {
  auto take = [&](auto& container) -> std::unique_ptr<Sequence> {
    auto it = std::find_if(container.begin(), container.end(),
                           [&](const auto& s) { return s->request.id == request_id; });
    if (it == container.end()) return nullptr;
    std::unique_ptr<Sequence> seq = std::move(*it);
    container.erase(it);
    release(*seq);
    return seq;
  };
  if (auto seq = take(running_)) return seq;
  return take(waiting_);
}

}  // namespace quilt::engine
