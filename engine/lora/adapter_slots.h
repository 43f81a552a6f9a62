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

// Loads adapters into pool pages on demand and evicts idle ones, least recently used first.
// Not thread-safe: the engine thread owns it.
class AdapterSlots {
 public:
  // `backend` must outlive this; its LoRA pool is initialised here with `shape`.
  static Result<std::unique_ptr<AdapterSlots>> create(Backend& backend, const ModelConfig& cfg,
                                                      const LoraPoolShape& shape);

  // The slot of `weights`, loading it first if needed (evicting idle adapters to make room).
  // Each acquire is paired with a release. ResourceExhausted when it cannot fit now.
  Result<int32_t> acquire(const std::shared_ptr<const LoraWeights>& weights);
  void release(int32_t slot);

  // Evicts the idle adapters `match` accepts (those in use stay); returns how many went.
  int32_t evict_idle(const std::function<bool(const LoraWeights&)>& match);
  std::vector<std::string> resident_names() const;

  int32_t rank_of(int32_t slot) const { return slots_[slot].max_rank; }
  bool is_resident(const LoraWeights* weights) const { return by_weights_.count(weights) > 0; }
  int32_t num_resident() const { return static_cast<int32_t>(by_weights_.size()); }
  int32_t pages_in_use() const { return pages_.num_used(); }
  // Pages the adapter needs in this pool: more than the whole pool means it can never load.
  int32_t pages_needed(const LoraWeights& weights) const;
  int32_t num_pages() const { return pages_.num_pages(); }
  uint64_t num_loads() const { return loads_; }
  uint64_t num_evictions() const { return evictions_; }

 private:
  struct Slot {
    std::shared_ptr<const LoraWeights> weights;  // null: free
    std::vector<int32_t> pages;
    int32_t users = 0;
    int32_t max_rank = 0;
    std::list<int32_t>::iterator lru_pos;  // valid while users == 0 and resident
  };

  AdapterSlots(Backend& backend, const ModelConfig& cfg, const LoraPoolShape& shape);
  Status load(int32_t slot, const std::shared_ptr<const LoraWeights>& weights);
  void evict(int32_t slot);
  Status write_tables();

  Backend& backend_;
  ModelConfig cfg_;
  LoraPoolShape shape_;
  PageAllocator pages_;
  std::vector<Slot> slots_;
  std::unordered_map<const LoraWeights*, int32_t> by_weights_;
  uint64_t loads_ = 0;
  uint64_t evictions_ = 0;
  std::list<int32_t> idle_lru_;  // resident slots nobody uses, least recently used first
};

}  // namespace quilt::engine
