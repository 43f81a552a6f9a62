// Which adapters are resident in the backend's LoRA page pool, and in which slot.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/memory/page_allocator.h"
#include "engine/model/lora_weights.h"

namespace quilt::engine {

// Where adapter pages come from. Alone: a pool of the adapters' own, one page per unit. Shared:
// the units are the KV cache's blocks (one allocator for both, S-LoRA's unified paging), each
// pages_per_unit pages; page j of unit u has index j * num_units + u, which in the KV cache's
// layout (per layer K [blocks, ...] then V) is the K or V of block u in one layer.
struct AdapterPageSource {
  PageAllocator* shared_units = nullptr;  // null: a pool of the adapters' own
  int32_t pages_per_unit = 1;
};

// Loads adapters into pool pages on demand and evicts idle ones, least recently used first.
// Loads are asynchronous where the backend can (Backend::start_lora_load): a load starts when an
// adapter is acquired or prefetched, and ready() orders the step that first reads it after the
// copy, without the host waiting. Not thread-safe: the engine thread owns it.
class AdapterSlots {
 public:
  // `backend` must outlive this; its LoRA pool is initialised here with `shape`.
  // async_loads false: every load completes before acquire/prefetch return (the reference path).
  // With source.shared_units, shape.num_pages must be its units * pages_per_unit.
  static Result<std::unique_ptr<AdapterSlots>> create(Backend& backend, const ModelConfig& cfg,
                                                      const LoraPoolShape& shape,
                                                      bool async_loads = true,
                                                      AdapterPageSource source = {});

  // The slot of `weights`, loading it first if needed (evicting idle adapters to make room).
  // Each acquire is paired with a release. ResourceExhausted when it cannot fit now.
  Result<int32_t> acquire(const std::shared_ptr<const LoraWeights>& weights);
  void release(int32_t slot);

  // Starts loading `weights` ahead of its request's turn, into free room or room taken from idle
  // adapters that `wanted` rejects (adapters queued requests need are kept). True when a load
  // started; false when it is resident already or there is no room now. An error is the load's
  // failure: only the requests of this adapter fail.
  // keep_free units stay free after the load (a shared pool: the blocks running sequences may
  // take next step, or the prefetched adapter would only be evicted again for them).
  Result<bool> prefetch(const std::shared_ptr<const LoraWeights>& weights,
                        const std::function<bool(const LoraWeights*)>& wanted,
                        int32_t keep_free = 0);
  // Called before a step that reads `slot`: the step is ordered after the slot's load (a stream
  // wait on cuda, nothing on cpu), once. An error means the load failed: the slot is dropped
  // once its users release it, and a later acquire of the same weights loads them afresh.
  Status ready(int32_t slot);

  // Evicts the idle adapters `match` accepts (those in use stay); returns how many went.
  int32_t evict_idle(const std::function<bool(const LoraWeights&)>& match);
  // Shared units only: evicts idle adapters, least recently used first, until `units` units are
  // free: first those no queued request wants (`wanted` rejects), then the others (a queued
  // request reloads its adapter later; a running one's KV must not wait for it). True when the
  // units are free.
  bool free_units_for_kv(int32_t units, const std::function<bool(const LoraWeights*)>& wanted);
  bool shares_units() const { return own_units_ == nullptr; }
  std::vector<std::string> resident_names() const;

  int32_t rank_of(int32_t slot) const { return slots_[slot].max_rank; }
  bool is_resident(const LoraWeights* weights) const { return by_weights_.count(weights) > 0; }
  int32_t num_resident() const { return static_cast<int32_t>(by_weights_.size()); }
  // Units held by resident adapters (shared: KV blocks lent to adapters).
  int32_t units_in_use() const { return units_in_use_; }
  // Pages the adapter needs in this pool, and the units that holds: more units than the whole
  // pool means it can never load.
  int32_t pages_needed(const LoraWeights& weights) const;
  int32_t units_needed(const LoraWeights& weights) const;
  int32_t num_units() const { return units_.num_pages(); }
  uint64_t num_loads() const { return loads_; }
  uint64_t num_evictions() const { return evictions_; }
  uint64_t num_prefetches() const { return prefetches_; }  // loads started by prefetch()
  uint64_t num_load_waits() const { return load_waits_; }   // ready() calls that had to order

 private:
  struct Slot {
    std::shared_ptr<const LoraWeights> weights;  // null: free
    std::vector<int32_t> units;  // taken from the allocator
    std::vector<int32_t> pages;  // the pages of those units the adapter fills, in order
    int32_t users = 0;
    int32_t max_rank = 0;
    std::list<int32_t>::iterator lru_pos;  // valid while users == 0 and resident
    uint64_t pending_load = 0;  // Backend load id not yet waited for (0: none)
    bool failed = false;        // its load failed: no new users, dropped at the last release
  };

  AdapterSlots(Backend& backend, const ModelConfig& cfg, const LoraPoolShape& shape,
               bool async_loads, AdapterPageSource source);
  bool take_pages(int32_t pages, Slot& s);
  void give_back_pages(Slot& s);
  int32_t free_slot() const;
  Status load(int32_t slot, const std::shared_ptr<const LoraWeights>& weights);
  Status check_shapes(const LoraWeights& weights) const;
  void evict(int32_t slot);
  Status write_tables();

  Backend& backend_;
  ModelConfig cfg_;
  LoraPoolShape shape_;
  bool async_loads_;
  std::unique_ptr<PageAllocator> own_units_;  // without a shared allocator
  PageAllocator& units_;
  int32_t pages_per_unit_;
  int32_t units_in_use_ = 0;
  std::vector<Slot> slots_;
  std::unordered_map<const LoraWeights*, int32_t> by_weights_;
  uint64_t loads_ = 0;
  uint64_t evictions_ = 0;
  uint64_t prefetches_ = 0;
  uint64_t load_waits_ = 0;
  std::list<int32_t> idle_lru_;  // resident slots nobody uses, least recently used first
};

}  // namespace quilt::engine
