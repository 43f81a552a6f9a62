// AdapterRegistry: opening, resolving (canary splits included), cold loads, the host weight cache.
// The write paths (deploy, activate, splits, remove) are in registry_deploy.cc.
//
// Locking. mu_ guards every map of the registry and every Entry's fields; it is only ever held
// for map lookups and small copies, never across parsing, file reads or RocksDB writes, so
// resolve() never waits for an upload. Each Entry also has write_mu, taken before mu_ (never
// while holding it): it orders the persisted changes of one name (deploy, rollback, remove), so
// each metadata record written includes every version committed before it.
#include "adapters/registry.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <future>
#include <utility>

#include "adapters/registry_entry.h"
#include "adapters/registry_store.h"

namespace quilt::adapters {

namespace store = registry_store;
using engine::LoraWeights;
using WeightsPtr = std::shared_ptr<const LoraWeights>;
using registry_detail::not_found;

struct AdapterRegistry::PendingLoad {
  // Guarded by the registry's mu_: called once with the load's result, outside the lock.
  std::vector<std::function<void(const Result<WeightsPtr>&)>> waiters;
};

namespace {

// "name" → (name, 0); "name@N" → (name, N) with N a positive decimal integer; else nullopt.
std::optional<std::pair<std::string, int64_t>> parse_ref(const std::string& ref) {
  const size_t at = ref.find('@');
  if (at == std::string::npos) return std::pair{ref, int64_t{0}};
  const std::string digits = ref.substr(at + 1);
  if (digits.empty() || digits.size() > 18) return std::nullopt;  // 18 digits fit in int64
  int64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n <= 0) return std::nullopt;
  return std::pair{ref.substr(0, at), n};
}

}  // namespace

AdapterRegistry::AdapterRegistry(storage::Database& db, const engine::ModelConfig& model,
                                 int64_t cache_bytes)
    : db_(db), model_(model), cache_bytes_(std::max<int64_t>(cache_bytes, 0)) {
  for (int i = 0; i < kLoaderThreads; ++i) loaders_.emplace_back([this] { run_loader(); });
}

Result<std::unique_ptr<AdapterRegistry>> AdapterRegistry::open(storage::Database& db,
                                                               const engine::ModelConfig& model,
                                                               int64_t host_cache_bytes,
                                                               const AdapterLimits& limits) {
  std::unique_ptr<AdapterRegistry> reg(new AdapterRegistry(db, model, host_cache_bytes));
  reg->limits_ = limits;
  QUILT_ASSIGN_OR_RETURN(auto records, db.scan(storage::Family::kAdapters, store::kMetaPrefix));
  QUILT_ASSIGN_OR_RETURN(auto marks, db.scan(storage::Family::kAdapters, store::kHighWaterPrefix));
  // No other thread can see `reg` yet; the lock only keeps the guarded-by contract simple.
  std::lock_guard lock(reg->mu_);
  for (const auto& [key, value] : marks) {
    QUILT_ASSIGN_OR_RETURN(auto mark, store::decode_high_water(key, value));
    reg->high_water_[mark.first] = mark.second;
  }
  for (const auto& [key, value] : records) {
    QUILT_ASSIGN_OR_RETURN(AdapterInfo info, store::decode_record(key, value));
    auto e = std::make_shared<Entry>();
    e->name = info.name;
    e->owner = info.owner;
    e->shared = info.shared;
    e->live_version = info.live_version;
    e->split = std::move(info.split);
    e->versions = std::move(info.versions);
    // Data written before high-water marks existed has none: its last version is the mark.
    int64_t& mark = reg->high_water_[e->name];
    mark = std::max(mark, e->versions.back().version);
    e->next_version = mark + 1;
    e->incarnation = reg->next_incarnation_++;
    reg->entries_[e->name] = std::move(e);
  }
  return reg;
}

bool AdapterRegistry::valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<ResolvedAdapter> AdapterRegistry::resolve(const std::string& ref,
                                                 const std::string& tenant_id) {
  std::promise<Result<ResolvedAdapter>> answer;
  std::future<Result<ResolvedAdapter>> future = answer.get_future();
  resolve_async(ref, tenant_id, [&answer](Result<ResolvedAdapter> r) {
    answer.set_value(std::move(r));
  });
  return future.get();
}

void AdapterRegistry::resolve_async(const std::string& ref, const std::string& tenant_id,
                                    ResolveCallback done) {
  const auto parsed = parse_ref(ref);
  if (!parsed) return done(not_found(ref));
  const auto& [name, wanted] = *parsed;

  ResolvedAdapter out;
  out.name = name;
  AdapterVersion version;
  uint64_t incarnation = 0;
  bool loader = false;
  {
    std::lock_guard lock(mu_);
    auto e = find_committed_locked(name);
    // One answer for "missing" and "not yours", so names never leak across tenants.
    if (!e || !(e->shared || e->owner == tenant_id)) return done(not_found(ref));
    int64_t version_number = wanted;
    if (wanted == 0) {
      version_number = e->split.empty() ? e->live_version : pick_version(e->split, e->picks++);
    }
    const AdapterVersion* v = version_number == 0 ? nullptr : e->find_version(version_number);
    if (v == nullptr) return done(not_found(ref));
    out.version = v->version;
    if ((out.weights = cache_get_locked({name, out.version}))) {
      // Hot: answered here. The lock is not held across the callback below.
    } else {
      version = *v;
      incarnation = e->incarnation;
      auto& slot = loading_[{incarnation, out.version}];
      if (!slot) {
        slot = std::make_shared<PendingLoad>();
        loader = true;
      }
      // Everyone asking for this version while it loads waits on the one read.
      slot->waiters.push_back([out, ref, done](const Result<WeightsPtr>& r) mutable {
        if (!r.ok()) return done(r.status());
        out.weights = *r;
        done(std::move(out));
      });
    }
  }
  if (out.weights) return done(std::move(out));
  if (!loader) return;
  bool queued = false;
  {
    std::lock_guard lock(jobs_mu_);
    if (!draining_) {
      jobs_.push_back([this, name = name, version, incarnation] {
        load(name, version, incarnation);
      });
      queued = true;
    }
  }
  if (queued) {
    jobs_cv_.notify_one();
    return;
  }
  // Draining: nobody may wait for a load that will never run.
  std::vector<std::function<void(const Result<WeightsPtr>&)>> waiters;
  {
    std::lock_guard lock(mu_);
    auto it = loading_.find({incarnation, out.version});
    if (it != loading_.end()) {
      waiters.swap(it->second->waiters);
      loading_.erase(it);
    }
  }
  const Result<WeightsPtr> refused = Status::Unavailable("the server is shutting down");
  for (auto& w : waiters) w(refused);
}

void AdapterRegistry::load(const std::string& name, AdapterVersion version, uint64_t incarnation) {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    hook = storage_read_hook_;
  }
  if (hook) hook();
  // Reading and converting (safetensors → the engine's float layout) run here, unlocked.
  Result<WeightsPtr> r = Status::Internal("adapter '" + name + "': load failed");
  try {
    r = store::load_version(db_, model_, name, version);
  } catch (const std::exception& ex) {
    r = Status::Internal("adapter '" + name + "': load failed: " + ex.what());
  }
  std::vector<std::function<void(const Result<WeightsPtr>&)>> waiters;
  {
    std::lock_guard lock(mu_);
    auto pending = loading_.find({incarnation, version.version});
    if (pending != loading_.end()) {
      waiters.swap(pending->second->waiters);
      loading_.erase(pending);
    }
    auto it = entries_.find(name);
    const bool current = it != entries_.end() && it->second->incarnation == incarnation;
    if (r.ok() && current) {
      cache_put_locked({name, version.version}, *r);
      ++host_stats_.loads;  // read from storage (uploads enter the cache without a load)
    } else if (!r.ok() && !current) {
      r = not_found(name);  // removed while we read it: its chunks may be half gone
    }
  }
  for (auto& w : waiters) w(r);
}

void AdapterRegistry::run_loader() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(jobs_mu_);
      jobs_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_jobs_;
    }
    job();
    {
      std::lock_guard lock(jobs_mu_);
      --running_jobs_;
    }
    jobs_cv_.notify_all();
  }
}

void AdapterRegistry::drain() {
  std::unique_lock lock(jobs_mu_);
  draining_ = true;
  jobs_cv_.wait(lock, [&] { return jobs_.empty() && running_jobs_ == 0; });
}

AdapterRegistry::~AdapterRegistry() {
  drain();
  {
    std::lock_guard lock(jobs_mu_);
    stopping_ = true;
  }
  jobs_cv_.notify_all();
  for (std::thread& t : loaders_) t.join();
}

void AdapterRegistry::set_storage_read_hook(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  storage_read_hook_ = std::move(hook);
}

bool AdapterRegistry::on_loader_thread() const {
  const auto me = std::this_thread::get_id();
  for (const std::thread& t : loaders_) {
    if (t.get_id() == me) return true;
  }
  return false;
}

std::shared_ptr<AdapterRegistry::Entry> AdapterRegistry::find_committed_locked(
    const std::string& name, const std::optional<std::string>& owner) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second->versions.empty()) return nullptr;
  if (owner && it->second->owner != *owner) return nullptr;
  return it->second;
}

AdapterInfo AdapterRegistry::info_locked(const Entry& e) const {
  AdapterInfo info;
  info.name = e.name;
  info.owner = e.owner;
  info.shared = e.shared;
  info.live_version = e.live_version;
  info.split = e.split;
  info.versions = e.versions;
  info.host_resident = cache_.count({e.name, e.live_version}) > 0;
  return info;
}

void AdapterRegistry::release_pending_locked(const std::shared_ptr<Entry>& e) {
  --e->pending_deploys;
  if (e->pending_deploys == 0 && e->versions.empty()) {
    auto it = entries_.find(e->name);
    if (it != entries_.end() && it->second == e) entries_.erase(it);
  }
}

WeightsPtr AdapterRegistry::cache_get_locked(const CacheKey& key) {
  auto it = cache_.find(key);
  if (it == cache_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.weights;
}

void AdapterRegistry::cache_put_locked(const CacheKey& key, WeightsPtr weights) {
  const int64_t bytes = weights->num_parameters() * static_cast<int64_t>(sizeof(float));
  if (auto it = cache_.find(key); it != cache_.end()) {
    // Two loads of one version raced; either copy will do, keep the one already there.
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  // Larger than the whole budget: not kept (the caller still gets it for its request).
  if (bytes > cache_bytes_) return;
  while (cache_used_ + bytes > cache_bytes_ && !lru_.empty()) {
    auto victim = cache_.find(lru_.back());
    cache_used_ -= victim->second.bytes;
    cache_.erase(victim);
    lru_.pop_back();
    ++host_stats_.evictions;
  }
  lru_.push_front(key);
  cache_[key] = CacheSlot{std::move(weights), bytes, lru_.begin()};
  cache_used_ += bytes;
}

AdapterRegistry::HostCacheStats AdapterRegistry::host_cache_stats() const {
  std::lock_guard lock(mu_);
  return host_stats_;
}

void AdapterRegistry::cache_drop_locked(const std::string& name) {
  auto it = cache_.lower_bound({name, 0});
  while (it != cache_.end() && it->first.first == name) {
    cache_used_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    it = cache_.erase(it);
  }
}

}  // namespace quilt::adapters
