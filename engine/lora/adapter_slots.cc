// AdapterSlots: pages each adapter's A and Bᵀ matrices into the pool and keeps the slot tables.
#include "engine/lora/adapter_slots.h"

#include <algorithm>

#include "kernels/sgmv/sgmv.h"

namespace quilt::engine {
namespace {

using kernels::sgmv::pages_for_matrix;

}  // namespace

AdapterSlots::AdapterSlots(Backend& backend, const ModelConfig& cfg, const LoraPoolShape& shape,
                           bool async_loads, AdapterPageSource source)
    : backend_(backend),
      cfg_(cfg),
      shape_(shape),
      async_loads_(async_loads),
      own_units_(source.shared_units ? nullptr : std::make_unique<PageAllocator>(shape.num_pages)),
      units_(source.shared_units ? *source.shared_units : *own_units_),
      pages_per_unit_(source.shared_units ? source.pages_per_unit : 1),
      slots_(shape.max_slots) {}

Result<std::unique_ptr<AdapterSlots>> AdapterSlots::create(Backend& backend, const ModelConfig& cfg,
                                                           const LoraPoolShape& shape,
                                                           bool async_loads,
                                                           AdapterPageSource source) {
  if (source.shared_units &&
      (source.pages_per_unit < 1 ||
       static_cast<int64_t>(source.shared_units->num_pages()) * source.pages_per_unit != shape.num_pages)) {
    return Status::Internal("adapter slots: a shared pool of " + std::to_string(shape.num_pages) +
                            " pages is not its units times pages_per_unit");
  }
  QUILT_RETURN_IF_ERROR(backend.init_lora_pool(shape));
  return std::unique_ptr<AdapterSlots>(new AdapterSlots(backend, cfg, shape, async_loads, source));
}

// All or nothing: whole units, their pages in unit-major order, the last unit's tail unused.
bool AdapterSlots::take_pages(int32_t pages, Slot& s) {
  const int32_t units = (pages + pages_per_unit_ - 1) / pages_per_unit_;
  s.units.clear();
  s.pages.clear();
  if (!units_.allocate(units, s.units)) return false;
  units_in_use_ += units;
  const int32_t num_units = units_.num_pages();
  for (int32_t u : s.units) {
    for (int32_t j = 0; j < pages_per_unit_ && static_cast<int32_t>(s.pages.size()) < pages; ++j) {
      s.pages.push_back(j * num_units + u);
    }
  }
  return true;
}

void AdapterSlots::give_back_pages(Slot& s) {
  units_.free(s.units);
  units_in_use_ -= static_cast<int32_t>(s.units.size());
  s.units.clear();
  s.pages.clear();
}

int32_t AdapterSlots::units_needed(const LoraWeights& weights) const {
  return (pages_needed(weights) + pages_per_unit_ - 1) / pages_per_unit_;
}

bool AdapterSlots::free_units_for_kv(int32_t units,
                                     const std::function<bool(const LoraWeights*)>& wanted) {
  if (!shares_units()) return units_.num_free() >= units;
  for (const bool evict_wanted : {false, true}) {
    for (auto it = idle_lru_.begin(); it != idle_lru_.end() && units_.num_free() < units;) {
      const int32_t slot = *it++;  // evict() erases the current entry
      if (!evict_wanted && wanted(slots_[slot].weights.get())) continue;
      evict(slot);
    }
  }
  return units_.num_free() >= units;
}

int32_t AdapterSlots::free_slot() const {
  for (int32_t i = 0; i < static_cast<int32_t>(slots_.size()); ++i) {
    if (!slots_[i].weights) return i;
  }
  return -1;
}

int32_t AdapterSlots::pages_needed(const LoraWeights& weights) const {
  int64_t n = 0;
  for (const auto& layer : weights.layers) {
    for (int p = 0; p < kNumProjections; ++p) {
      const auto proj = static_cast<Projection>(p);
      n += pages_for_matrix(layer[p].rank, projection_in_dim(cfg_, proj), shape_.page_elems) +
           pages_for_matrix(layer[p].rank, projection_out_dim(cfg_, proj), shape_.page_elems);
    }
  }
  return static_cast<int32_t>(std::min<int64_t>(n, INT32_MAX));
}

Result<int32_t> AdapterSlots::acquire(const std::shared_ptr<const LoraWeights>& weights) {
  if (auto it = by_weights_.find(weights.get()); it != by_weights_.end()) {
    Slot& s = slots_[it->second];
    if (s.users++ == 0) idle_lru_.erase(s.lru_pos);
    return it->second;
  }
  const int32_t need = units_needed(*weights);
  if (need > units_.num_pages()) {
    return Status::InvalidArgument("adapter " + weights->name + " needs " + std::to_string(need) +
                                   " units of the pool; it has " + std::to_string(units_.num_pages()));
  }
  // Evict idle adapters, least recently used first, until both a slot and the pages are free.
  while ((free_slot() < 0 || units_.num_free() < need) && !idle_lru_.empty()) {
    evict(idle_lru_.front());
  }
  const int32_t slot = free_slot();
  if (slot < 0 || units_.num_free() < need) {
    return Status::ResourceExhausted("no room for adapter " + weights->name + " until running requests finish");
  }
  QUILT_RETURN_IF_ERROR(load(slot, weights));
  slots_[slot].users = 1;
  return slot;
}

int32_t AdapterSlots::evict_idle(const std::function<bool(const LoraWeights&)>& match) {
  std::vector<int32_t> victims;
  for (int32_t slot : idle_lru_) {
    if (match(*slots_[slot].weights)) victims.push_back(slot);
  }
  for (int32_t slot : victims) evict(slot);
  return static_cast<int32_t>(victims.size());
}

std::vector<std::string> AdapterSlots::resident_names() const {
  std::vector<std::string> names;
  for (const Slot& s : slots_) {
    if (s.weights) names.push_back(s.weights->name);
  }
  return names;
}

void AdapterSlots::release(int32_t slot) {
  Slot& s = slots_[slot];
  if (--s.users > 0) return;
  if (s.failed) {  // nobody reads it any more: its pages and slot are free again
    give_back_pages(s);
    s = Slot{};
    return;
  }
  s.lru_pos = idle_lru_.insert(idle_lru_.end(), slot);
}

Result<bool> AdapterSlots::prefetch(const std::shared_ptr<const LoraWeights>& weights,
                                    const std::function<bool(const LoraWeights*)>& wanted,
                                    int32_t keep_free) {
  if (auto it = by_weights_.find(weights.get()); it != by_weights_.end()) {
    Slot& s = slots_[it->second];
    if (s.users == 0) idle_lru_.splice(idle_lru_.end(), idle_lru_, s.lru_pos);  // recently wanted
    return false;
  }
  const int32_t need = units_needed(*weights) + std::max(keep_free, 0);
  if (need > units_.num_pages()) return false;  // never loadable, or not beside the reserve
  // Room only from idle adapters no queued request wants, least recently used first; and only
  // when it suffices, so a prefetch that cannot happen evicts nothing.
  std::vector<int32_t> victims;
  int32_t slots_free = free_slot() >= 0 ? 1 : 0;
  int32_t pages_free = units_.num_free();  // in units
  for (int32_t slot : idle_lru_) {
    if (slots_free > 0 && pages_free >= need) break;
    if (wanted(slots_[slot].weights.get())) continue;
    victims.push_back(slot);
    slots_free = 1;
    pages_free += static_cast<int32_t>(slots_[slot].units.size());
  }
  if (slots_free == 0 || pages_free < need) return false;
  for (int32_t slot : victims) evict(slot);
  const int32_t slot = free_slot();
  QUILT_RETURN_IF_ERROR(load(slot, weights));
  Slot& s = slots_[slot];
  s.lru_pos = idle_lru_.insert(idle_lru_.end(), slot);  // resident, nobody uses it yet
  ++prefetches_;
  return true;
}

Status AdapterSlots::ready(int32_t slot) {
  Slot& s = slots_[slot];
  if (s.failed) return Status::Internal("adapter " + s.weights->name + " failed to load");
  if (s.pending_load == 0) return Status::OK();
  const uint64_t id = s.pending_load;
  s.pending_load = 0;
  ++load_waits_;
  Status st = backend_.wait_lora_load(id);
  if (!st.ok()) {
    s.failed = true;
    by_weights_.erase(s.weights.get());
  }
  return st;
}

// The engine's LoraWeights come from validated PEFT files, but a short matrix here would be read
// past its end: a bad adapter fails its own load, not the process.
Status AdapterSlots::check_shapes(const LoraWeights& weights) const {
  if (static_cast<int32_t>(weights.layers.size()) != shape_.num_layers) {
    return Status::InvalidArgument("adapter " + weights.name + " has the wrong number of layers");
  }
  for (const auto& layer : weights.layers) {
    for (int p = 0; p < kNumProjections; ++p) {
      const auto proj = static_cast<Projection>(p);
      const LoraModule& m = layer[p];
      if (m.rank < 0 ||
          m.a.size() != static_cast<size_t>(m.rank * projection_in_dim(cfg_, proj)) ||
          m.bt.size() != static_cast<size_t>(m.rank * projection_out_dim(cfg_, proj))) {
        return Status::InvalidArgument("adapter " + weights.name + ": " + projection_name(proj) +
                                       " matrices do not match rank " + std::to_string(m.rank));
      }
    }
  }
  return Status::OK();
}

Status AdapterSlots::load(int32_t slot, const std::shared_ptr<const LoraWeights>& weights) {
  QUILT_RETURN_IF_ERROR(check_shapes(*weights));
  Slot& s = slots_[slot];
  if (!take_pages(pages_needed(*weights), s)) {
    return Status::Internal("adapter pages vanished between check and allocation");
  }
  // Copy each matrix flat into its pages (sgmv.h), zero-padding its last page.
  const int64_t pe = shape_.page_elems;
  std::vector<float> data(s.pages.size() * pe, 0.f);
  int64_t next = 0;
  auto put_rows = [&](const std::vector<float>& rows, int64_t rank, int64_t dim) {
    std::copy_n(rows.begin(), rank * dim, data.begin() + next * pe);
    next += pages_for_matrix(rank, dim, pe);
  };
  s.max_rank = 0;
  for (const auto& layer : weights->layers) {
    for (int p = 0; p < kNumProjections; ++p) {
      const auto proj = static_cast<Projection>(p);
      put_rows(layer[p].a, layer[p].rank, projection_in_dim(cfg_, proj));
      put_rows(layer[p].bt, layer[p].rank, projection_out_dim(cfg_, proj));
      s.max_rank = std::max<int32_t>(s.max_rank, static_cast<int32_t>(layer[p].rank));
    }
  }
  s.pending_load = 0;
  Status st;
  if (async_loads_) {
    Result<uint64_t> id = backend_.start_lora_load(s.pages, data);
    if (id.ok()) s.pending_load = *id;
    st = id.status();
  } else {
    st = backend_.write_lora_pages(s.pages, data);
  }
  if (!st.ok()) {
    give_back_pages(s);
    return st;
  }
  s.failed = false;
  s.weights = weights;
  by_weights_[weights.get()] = slot;
  ++loads_;
  return write_tables();
}

void AdapterSlots::evict(int32_t slot) {
  Slot& s = slots_[slot];
  idle_lru_.erase(s.lru_pos);
  by_weights_.erase(s.weights.get());
  // Shared units go to KV blocks next, written by the compute stream: order it after a copy
  // into them that nobody waited for yet (a prefetch never used). A failure only meant the
  // pages were never filled.
  if (s.pending_load != 0 && shares_units()) (void)backend_.wait_lora_load(s.pending_load);
  give_back_pages(s);
  s = Slot{};
  ++evictions_;
  // The evicted slot's table entries go stale but nothing references the slot any more;
  // the next load rewrites the tables.
}

// Rebuilds the page-index list and the [slot][layer][proj] module table from the resident slots.
Status AdapterSlots::write_tables() {
  const int32_t num_layers = shape_.num_layers;
  std::vector<int32_t> indices;
  std::vector<kernels::sgmv::LoraModuleRef> modules(
      static_cast<size_t>(shape_.max_slots) * num_layers * kNumProjections, {0, 0.f, 0, 0});
  const int64_t pe = shape_.page_elems;
  for (int32_t slot = 0; slot < shape_.max_slots; ++slot) {
    const Slot& s = slots_[slot];
    if (!s.weights) continue;
    size_t next = 0;
    for (int32_t l = 0; l < num_layers; ++l) {
      for (int p = 0; p < kNumProjections; ++p) {
        const auto proj = static_cast<Projection>(p);
        const LoraModule& m = s.weights->layers[l][p];
        const auto a_pages =
            static_cast<size_t>(pages_for_matrix(m.rank, projection_in_dim(cfg_, proj), pe));
        const auto b_pages =
            static_cast<size_t>(pages_for_matrix(m.rank, projection_out_dim(cfg_, proj), pe));
        auto& ref = modules[(static_cast<size_t>(slot) * num_layers + l) * kNumProjections + p];
        ref.rank = static_cast<int32_t>(m.rank);
        ref.scale = m.scale;
        ref.a_pages = static_cast<int32_t>(indices.size());
        indices.insert(indices.end(), s.pages.begin() + next, s.pages.begin() + next + a_pages);
        next += a_pages;
        ref.bt_pages = static_cast<int32_t>(indices.size());
        indices.insert(indices.end(), s.pages.begin() + next, s.pages.begin() + next + b_pages);
        next += b_pages;
      }
    }
  }
  return backend_.write_lora_tables(indices, modules);
}

}  // namespace quilt::engine
