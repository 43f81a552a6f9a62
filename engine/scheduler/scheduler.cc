// Scheduler: running sequences first (decode, then their remaining prefill), then admission.
#include "engine/scheduler/scheduler.h"

#include <algorithm>
#include <unordered_set>

namespace quilt::engine {

Scheduler::Scheduler(const SchedulerConfig& config, PageAllocator& kv_blocks,
                     AdapterSlots& adapters)
    : config_(config), kv_blocks_(kv_blocks), adapters_(adapters) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) { fair_.enqueue(std::move(seq)); }

bool Scheduler::make_room(int32_t blocks) {
  if (kv_blocks_.num_free() >= blocks) return true;
  if (!adapters_.shares_units()) return false;
  std::unordered_set<const LoraWeights*> wanted;
  fair_.for_each_waiting([&](Sequence& s) {
    if (s.request.adapter) wanted.insert(s.request.adapter.get());
  });
  return adapters_.free_units_for_kv(blocks, [&](const LoraWeights* w) { return wanted.count(w) > 0; });
}

bool Scheduler::grow_blocks(Sequence& seq, int32_t tokens) {
  const int32_t need = blocks_for(tokens) - static_cast<int32_t>(seq.blocks.size());
  return need <= 0 || (make_room(need) && kv_blocks_.allocate(need, seq.blocks));
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

// Frees a running sequence's memory; it goes back to the head of its tenant's queue and
// recomputes its prompt and generated tokens when it runs again. What it was charged stays
// charged: the recompute is the engine's cost, and the tokens it already got were service.
void Scheduler::preempt(size_t index) {
  std::unique_ptr<Sequence> victim = std::move(running_[index]);
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  release(*victim);
  ++victim->preemptions;
  ++preemptions_;
  fair_.requeue_front(std::move(victim));
}

// Each planned sample is one output token: charged when planned, so that admission in the same
// step already sees the service the running sequences are about to get.
void Scheduler::charge_output(const Sequence& seq) {
  fair_.charge_output(seq.request.tenant, 1, seq.request.tenant_weight);
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int32_t budget = config_.max_step_tokens;

  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence& seq = *running_[i];
    const int32_t count = std::min(seq.num_uncomputed(), budget);
    if (!grow_blocks(seq, seq.num_computed + count)) {
      if (running_.size() == 1) {
        // Alone and out of memory: it holds the whole cache (beside its adapter), so waiting
        // or recomputing would never let it grow. It ends here, as at the end of a context.
        std::unique_ptr<Sequence> full = std::move(running_[i]);
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
        fair_.finished(*full);
        release(*full);
        ++out_of_memory_;
        plan.out_of_memory.push_back(std::move(full));
        continue;
      }
      // Out of KV blocks: the tenant with the most service gives way, even with a sequence
      // already planned this step (it leaves the plan and its budget comes back), or this one.
      const size_t v = fair_.choose_victim(running_);
      const Sequence* victim = running_[v].get();
      auto planned = std::find_if(plan.items.begin(), plan.items.end(),
                                  [&](const StepPlan::Item& item) { return item.seq == victim; });
      if (planned != plan.items.end()) {
        budget += planned->count;
        plan.items.erase(planned);
      }
      preempt(v);
      if (v < i) --i;  // the erase shifted this sequence down; v == i: i is now the next one
      continue;
    }
    plan.items.push_back({&seq, count, seq.num_computed + count == seq.num_tokens()});
    budget -= count;
    ++i;
  }
  // Charged only now: a planned sequence may still have been preempted above.
  for (const StepPlan::Item& item : plan.items) {
    if (item.samples) charge_output(*item.seq);
  }

  // Admission in fair-share order: when the chosen head cannot start, nothing behind it (of its
  // tenant or another) jumps ahead, or small requests of heavy tenants would starve big ones.
  while (budget > 0 && static_cast<int32_t>(running_.size()) < config_.max_running) {
    Sequence* next = fair_.peek_next();
    if (!next) break;
    Sequence& seq = *next;
    if (seq.request.adapter && !seq.has_adapter_slot) {
      Result<int32_t> slot = adapters_.acquire(seq.request.adapter);
      if (!slot.ok() && slot.status().code() != StatusCode::kResourceExhausted) {
        std::unique_ptr<Sequence> failed = fair_.pop_next();
        fair_.finished(*failed);  // pop_next counted it as running
        plan.failed.emplace_back(std::move(failed), slot.status());
        continue;
      }
      if (!slot.ok()) break;  // no room for the adapter until running requests finish
      seq.adapter_slot = *slot;
      seq.has_adapter_slot = true;
    }
    const int32_t count = std::min(seq.num_uncomputed(), budget);
    if (!grow_blocks(seq, count)) {
      release(seq);
      break;
    }
    // Taken before charging: the charge changes which head peek_next() would name.
    running_.push_back(fair_.pop_next());
    plan.items.push_back({&seq, count, count == seq.num_tokens()});
    budget -= count;
    // The prompt is charged once, at first admission; a preempted sequence's recompute is not.
    if (seq.preemptions == 0) {
      fair_.charge_input(seq.request.tenant, seq.num_prompt, seq.request.tenant_weight);
    }
    if (plan.items.back().samples) charge_output(seq);
  }
  return plan;
}

std::vector<uint64_t> Scheduler::live_ids() const {
  std::vector<uint64_t> ids;
  for (const auto& s : running_) ids.push_back(s->request.id);
  for (uint64_t id : fair_.waiting_ids()) ids.push_back(id);
  return ids;
}

std::unique_ptr<Sequence> Scheduler::remove(uint64_t request_id) {
  auto it = std::find_if(running_.begin(), running_.end(),
                         [&](const auto& s) { return s->request.id == request_id; });
  std::unique_ptr<Sequence> seq;
  if (it != running_.end()) {
    seq = std::move(*it);
    running_.erase(it);
    fair_.finished(*seq);
  } else {
    seq = fair_.erase(request_id);
    if (!seq) return nullptr;
  }
  release(*seq);
  return seq;
}

}  // namespace quilt::engine
