// Continuous batching: which sequences run in the next step and how many of their tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/lora/adapter_slots.h"
#include "engine/memory/page_allocator.h"
#include "engine/scheduler/fair_share.h"
#include "engine/scheduler/sequence.h"

namespace quilt::engine {

struct SchedulerConfig {
  int32_t max_step_tokens = 512;  // prefill chunks and decode tokens together
  int32_t max_running = 64;       // sequences holding KV blocks at once
  int32_t block_size = 16;        // tokens per KV block
};

// One step's work: each entry computes `count` tokens of `seq` starting at seq->num_computed.
struct StepPlan {
  struct Item {
    Sequence* seq;
    int32_t count;
    bool samples;  // the chunk reaches the end of the sequence's tokens: sample the next one
  };
  std::vector<Item> items;
  // Waiting sequences whose adapter failed to load: out of the scheduler, to be ended with the
  // error. Only they fail; admission went on past them.
  std::vector<std::pair<std::unique_ptr<Sequence>, Status>> failed;
  // Running sequences that filled the whole KV cache alone (nothing left to preempt or evict):
  // out of the scheduler, to be ended with finish reason length.
  std::vector<std::unique_ptr<Sequence>> out_of_memory;
  bool empty() const { return items.empty(); }
};

// Continuous batching with chunked prefill. Each step, running sequences go first (decodes and
// the rest of their prompts), then waiting ones are admitted in fair-share order (FairShare: the
// head of the tenant with the least weighted service) until the budget, the running limit, the KV
// blocks or the adapter slots run out; a head that does not fit stops admission, so nobody jumps
// the queue. A head whose adapter fails to load leaves with the error (StepPlan::failed) and
// admission goes on: one tenant's broken adapter never stalls the others. Admission takes only
// the blocks of the chunk it computes now; running sequences grow block by block. Out of KV
// blocks, a sequence first takes blocks from idle adapters when the pool is shared (those no
// queued request wants first, least recently used first); then the newest running sequence of
// the tenant with the most service is preempted by recompute (its generated tokens kept).
// A sequence alone that fills the whole cache ends (StepPlan::out_of_memory). Sampled tokens are charged to their tenant when planned, prompts when
// first admitted. Not thread-safe: the engine thread owns it.
class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, PageAllocator& kv_blocks, AdapterSlots& adapters);

  void add(std::unique_ptr<Sequence> seq);
  StepPlan schedule();
  // Removes a sequence (finished or aborted) and frees its blocks and adapter slot.
  std::unique_ptr<Sequence> remove(uint64_t request_id);

  int32_t num_waiting() const { return fair_.num_waiting(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  std::vector<uint64_t> live_ids() const;  // every waiting and running request
  // Every waiting sequence, in fair-share queue order (per tenant, FIFO within).
  void for_each_waiting(const std::function<void(Sequence&)>& f) const {
    fair_.for_each_waiting(f);
  }
  void for_each_running(const std::function<void(Sequence&)>& f) const {
    for (const auto& seq : running_) f(*seq);
  }
  uint64_t num_preemptions() const { return preemptions_; }
  uint64_t num_out_of_memory() const { return out_of_memory_; }
  bool idle() const { return !fair_.has_waiting() && running_.empty(); }
  // The fair-share state, for tests and metrics.
  const FairShare& fair_share() const { return fair_; }
  double virtual_counter(const std::string& tenant) const { return fair_.counter(tenant); }
  // Blocks a sequence of n tokens needs.
  int32_t blocks_for(int32_t tokens) const {
    return (tokens + config_.block_size - 1) / config_.block_size;
  }

 private:
  bool grow_blocks(Sequence& seq, int32_t tokens);
  // Shared pool: evicts idle adapters until `blocks` are free; true when they are.
  bool make_room(int32_t blocks);
  void release(Sequence& seq);
  void preempt(size_t index);
  void charge_output(const Sequence& seq);

  SchedulerConfig config_;
  PageAllocator& kv_blocks_;
  AdapterSlots& adapters_;
  FairShare fair_;                                  // owns the waiting sequences
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  uint64_t preemptions_ = 0;
  uint64_t out_of_memory_ = 0;
};

}  // namespace quilt::engine
