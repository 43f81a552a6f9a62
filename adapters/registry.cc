// AdapterRegistry: in-memory view of the adapter records, hot deploys, and the host weight cache.
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

#include "adapters/registry_store.h"

namespace quilt::adapters {

namespace store = registry_store;
using engine::LoraWeights;
using WeightsPtr = std::shared_ptr<const LoraWeights>;

struct AdapterRegistry::Entry {
  std::mutex write_mu;  // see the top of the file

  // Protected by the registry's mu_.
  std::string name;
  std::string owner;
  bool shared = false;
  int64_t live_version = 0;              // 0 while nothing is committed (a first deploy runs)
  std::vector<AdapterVersion> versions;  // ascending; empty: invisible to every reader
  int64_t next_version = 1;              // reserved numbers are never handed out twice
  int pending_deploys = 0;               // deploys holding this entry; it is not dropped meanwhile
  uint64_t incarnation = 0;              // renewed by remove(); keys loads in flight

  const AdapterVersion* find_version(int64_t v) const {
    for (const auto& av : versions) {
      if (av.version == v) return &av;
    }
    return nullptr;
  }
};

struct AdapterRegistry::PendingLoad {
  // Guarded by the registry's mu_: called once with the load's result, outside the lock.
  std::vector<std::function<void(const Result<WeightsPtr>&)>> waiters;
};

namespace {

Status not_found(const std::string& ref) {
  return Status::NotFound("adapter '" + ref + "' not found");
}

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

namespace {

// Refuses weights this server could store but never serve: too high a rank for the engine, or
// values that become Inf (or NaN) in the compute dtype.
Status check_limits(const engine::LoraWeights& w, const AdapterLimits& limits) {
  if (limits.max_rank > 0 && w.max_rank() > limits.max_rank) {
    return Status::Unprocessable("rank " + std::to_string(w.max_rank()) +
                                 " is above this server's limit of " +
                                 std::to_string(limits.max_rank));
  }
  const double max = limits.max_abs_value;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    for (const engine::LoraModule& m : w.layers[l]) {
      if (m.rank == 0) continue;
      const std::string where = "layer " + std::to_string(l);
      if (!std::isfinite(m.scale) || std::fabs(m.scale) > max) {
        return Status::Unprocessable("lora_alpha gives a scale of " + std::to_string(m.scale) +
                                     " (" + where + "), which is not finite in the compute dtype");
      }
      for (float x : m.a) {
        if (!(std::fabs(x) <= max)) {
          return Status::Unprocessable("a lora_A weight of " + where + " (" + std::to_string(x) +
                                       ") overflows the compute dtype");
        }
      }
      for (float x : m.bt) {
        const double scaled = static_cast<double>(x) * m.scale;
        if (!(std::fabs(x) <= max) || !(std::fabs(scaled) <= max)) {
          return Status::Unprocessable("a lora_B weight of " + where + " (" + std::to_string(x) +
                                       ", times the scale " + std::to_string(m.scale) +
                                       ") overflows the compute dtype");
        }
      }
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<AdapterRegistry>> AdapterRegistry::open(storage::Database& db,
                                                               const engine::ModelConfig& model,
                                                               int64_t host_cache_bytes,
                                                               const AdapterLimits& limits) {
  std::unique_ptr<AdapterRegistry> reg(new AdapterRegistry(db, model, host_cache_bytes));
  reg->limits_ = limits;
  QUILT_ASSIGN_OR_RETURN(auto records, db.scan(storage::Family::kAdapters, store::kMetaPrefix));
  // No other thread can see `reg` yet; the lock only keeps the guarded-by contract simple.
  std::lock_guard lock(reg->mu_);
  for (const auto& [key, value] : records) {
    QUILT_ASSIGN_OR_RETURN(AdapterInfo info, store::decode_record(key, value));
    auto e = std::make_shared<Entry>();
    e->name = info.name;
    e->owner = info.owner;
    e->shared = info.shared;
    e->live_version = info.live_version;
    e->versions = std::move(info.versions);
    e->next_version = e->versions.back().version + 1;
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

Result<AdapterVersion> AdapterRegistry::deploy(const std::string& name, const std::string& owner,
                                               bool shared, const std::string& config_json,
                                               const std::filesystem::path& weights_file) {
  if (!valid_name(name)) {
    return Status::InvalidArgument("invalid adapter name '" + name +
                                   "': use 1 to 64 of A-Z a-z 0-9 . _ - (not . or ..)");
  }
  // Tenant ids are "t_" + hex; the same alphabet keeps owners safe in keys, JSON and logs.
  if (!valid_name(owner)) return Status::InvalidArgument("invalid owner tenant id '" + owner + "'");

  // The slow part (file read, parse, validation, float conversion) holds no lock at all.
  QUILT_ASSIGN_OR_RETURN(store::Upload up,
                         store::prepare_upload(model_, name, config_json, weights_file));
  QUILT_RETURN_IF_ERROR(check_limits(*up.weights, limits_));

  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    auto& slot = entries_[name];
    if (!slot) {
      slot = std::make_shared<Entry>();
      slot->name = name;
      slot->incarnation = next_incarnation_++;
    }
    e = slot;
    ++e->pending_deploys;  // keeps `e` in entries_ while we wait for write_mu
  }

  std::lock_guard write_lock(e->write_mu);
  AdapterInfo record;
  {
    std::lock_guard lock(mu_);
    if (!e->versions.empty() && e->owner != owner) {
      release_pending_locked(e);
      return Status::InvalidArgument("adapter " + name + " belongs to another tenant");
    }
    up.version.version = e->next_version++;
    record = info_locked(*e);
  }
  // The record as it will be once this version is live; write_mu guarantees no other change of
  // this name lands between this snapshot and our write.
  record.owner = owner;
  record.shared = shared;
  record.live_version = up.version.version;
  record.versions.push_back(up.version);

  storage::WriteBatch batch;
  batch.put(storage::Family::kAdapters, store::meta_key(name), store::encode_record(record));
  store::put_version(batch, name, up.version.version, config_json, up.blob);
  up.blob = {};  // the batch holds its own copy; do not keep two while the write runs
  const Status written = db_.write(batch, /*sync=*/true);

  std::lock_guard lock(mu_);
  if (!written.ok()) {
    // Nothing changed on disk; the reserved number is simply skipped.
    release_pending_locked(e);
    return written.with_context("adapter '" + name + "': persisting version " +
                                std::to_string(up.version.version));
  }
  e->owner = owner;
  e->shared = shared;
  e->versions.push_back(up.version);
  e->live_version = up.version.version;
  cache_put_locked({name, up.version.version}, up.weights);
  release_pending_locked(e);
  return up.version;
}

std::vector<AdapterInfo> AdapterRegistry::list() const {
  std::lock_guard lock(mu_);
  std::vector<AdapterInfo> out;
  for (const auto& [name, e] : entries_) {
    if (!e->versions.empty()) out.push_back(info_locked(*e));
  }
  return out;
}

Result<AdapterInfo> AdapterRegistry::info(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto e = find_committed_locked(name);
  if (!e) return not_found(name);
  return info_locked(*e);
}

std::vector<AdapterInfo> AdapterRegistry::visible_to(const std::string& tenant_id) const {
  std::lock_guard lock(mu_);
  std::vector<AdapterInfo> out;
  for (const auto& [name, e] : entries_) {
    if (!e->versions.empty() && (e->shared || e->owner == tenant_id)) {
      out.push_back(info_locked(*e));
    }
  }
  return out;
}

Status AdapterRegistry::rollback(const std::string& name, int64_t version) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    e = find_committed_locked(name);
  }
  if (!e) return not_found(name);

  std::lock_guard write_lock(e->write_mu);
  AdapterInfo record;
  {
    std::lock_guard lock(mu_);
    if (e->versions.empty()) return not_found(name);  // removed while we waited
    if (e->find_version(version) == nullptr) {
      return Status::NotFound("adapter '" + name + "' has no version " + std::to_string(version));
    }
    record = info_locked(*e);
  }
  record.live_version = version;
  QUILT_RETURN_IF_ERROR(db_.put(storage::Family::kAdapters, store::meta_key(name),
                                store::encode_record(record), /*sync=*/true));
  std::lock_guard lock(mu_);
  e->live_version = version;
  return Status::OK();
}

Status AdapterRegistry::remove(const std::string& name) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    e = find_committed_locked(name);
  }
  if (!e) return not_found(name);

  std::lock_guard write_lock(e->write_mu);
  {
    std::lock_guard lock(mu_);
    if (e->versions.empty()) return not_found(name);  // removed while we waited
  }
  storage::WriteBatch batch;
  batch.remove(storage::Family::kAdapters, store::meta_key(name));
  const auto [blob_begin, blob_end] = store::blob_range(name);
  batch.remove_range(storage::Family::kAdapterBlobs, blob_begin, blob_end);
  const auto [config_begin, config_end] = store::config_range(name);
  batch.remove_range(storage::Family::kAdapterBlobs, config_begin, config_end);
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));

  std::lock_guard lock(mu_);
  // Requests holding weights keep them through their shared_ptr; new resolves see nothing.
  e->versions.clear();
  e->live_version = 0;
  e->next_version = 1;  // what a fresh open() of the now empty records would give
  e->incarnation = next_incarnation_++;
  cache_drop_locked(name);
  if (auto it = entries_.find(name);
      e->pending_deploys == 0 && it != entries_.end() && it->second == e) {
    entries_.erase(it);
  }
  return Status::OK();
}

Status AdapterRegistry::evict(const std::string& name) {
  std::lock_guard lock(mu_);
  if (!find_committed_locked(name)) return not_found(name);
  cache_drop_locked(name);
  return Status::OK();
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
    const AdapterVersion* v = e->find_version(wanted == 0 ? e->live_version : wanted);
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
    const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second->versions.empty()) return nullptr;
  return it->second;
}

AdapterInfo AdapterRegistry::info_locked(const Entry& e) const {
  AdapterInfo info;
  info.name = e.name;
  info.owner = e.owner;
  info.shared = e.shared;
  info.live_version = e.live_version;
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
  }
  lru_.push_front(key);
  cache_[key] = CacheSlot{std::move(weights), bytes, lru_.begin()};
  cache_used_ += bytes;
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
