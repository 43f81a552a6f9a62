// AdapterRegistry's write paths: deploys (idempotent, staged or live), activation and canary
// splits, removal, eviction, and the listings. Locking as described at the top of registry.cc.
#include <algorithm>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "adapters/registry.h"
#include "adapters/registry_entry.h"
#include "adapters/registry_store.h"

namespace quilt::adapters {

namespace store = registry_store;
using registry_detail::not_found;

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

// True when `version` takes live traffic (alone or in the split).
bool takes_traffic(const LiveSplit& split, int64_t live_version, int64_t version) {
  return split.empty() ? version == live_version : split.count(version) > 0;
}

Status no_version(const std::string& name, int64_t version) {
  return Status::NotFound("adapter '" + name + "' has no version " + std::to_string(version));
}

}  // namespace

LiveSplit AdapterInfo::live() const {
  if (!split.empty()) return split;
  if (live_version == 0) return {};
  return {{live_version, 1.0}};
}

Result<std::string> AdapterRegistry::normalize_metadata(const std::string& metadata) {
  if (metadata.empty()) return std::string("{}");
  if (metadata.size() > kMaxMetadataBytes) {
    return Status::InvalidArgument("metadata: at most " + std::to_string(kMaxMetadataBytes) +
                                   " bytes of JSON");
  }
  const nlohmann::json j = nlohmann::json::parse(metadata, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("metadata: must be a JSON object");
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<AdapterVersion> AdapterRegistry::deploy(const std::string& name, const std::string& owner,
                                               bool shared, const std::string& config_json,
                                               const std::filesystem::path& weights_file) {
  DeployOptions options;
  options.shared = shared;
  QUILT_ASSIGN_OR_RETURN(DeployOutcome out,
                         deploy(name, owner, config_json, weights_file, options));
  return out.version;
}

Result<DeployOutcome> AdapterRegistry::deploy(const std::string& name, const std::string& owner,
                                              const std::string& config_json,
                                              const std::filesystem::path& weights_file,
                                              const DeployOptions& options) {
  if (!valid_name(name)) {
    return Status::InvalidArgument("invalid adapter name '" + name +
                                   "': use 1 to 64 of A-Z a-z 0-9 . _ - (not . or ..)");
  }
  // Tenant ids are "t_" + hex; the same alphabet keeps owners safe in keys, JSON and logs.
  if (!valid_name(owner)) return Status::InvalidArgument("invalid owner tenant id '" + owner + "'");
  QUILT_ASSIGN_OR_RETURN(std::string metadata, normalize_metadata(options.metadata));

  // The slow part (file read, hashing, parse, validation, float conversion) holds no lock.
  QUILT_ASSIGN_OR_RETURN(store::Upload up,
                         store::prepare_upload(model_, name, config_json, weights_file));
  QUILT_RETURN_IF_ERROR(check_limits(*up.weights, limits_));
  up.version.uploaded_by = options.uploaded_by;
  up.version.metadata = std::move(metadata);

  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    auto& slot = entries_[name];
    if (!slot) {
      slot = std::make_shared<Entry>();
      slot->name = name;
      slot->incarnation = next_incarnation_++;
      // A name used before (then removed) goes on from its high-water mark.
      if (auto mark = high_water_.find(name); mark != high_water_.end()) {
        slot->next_version = mark->second + 1;
      }
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
    // The same content again (write_mu makes this exact even for concurrent identical pushes).
    for (const AdapterVersion& v : e->versions) {
      if (!v.sha256.empty() && v.sha256 == up.version.sha256 &&
          v.config_sha256 == up.version.config_sha256) {
        DeployOutcome same{v, /*created=*/false, takes_traffic(e->split, e->live_version, v.version)};
        release_pending_locked(e);
        return same;
      }
    }
    up.version.version = e->next_version++;
    record = info_locked(*e);
  }
  // The record as it will be once this version is stored; write_mu guarantees no other change of
  // this name lands between this snapshot and our write.
  const int64_t number = up.version.version;
  record.owner = owner;
  if (options.shared) record.shared = *options.shared;
  if (!options.stage) {
    record.live_version = number;
    record.split.clear();
  }
  record.versions.push_back(up.version);

  storage::WriteBatch batch;
  batch.put(storage::Family::kAdapters, store::meta_key(name), store::encode_record(record));
  batch.put(storage::Family::kAdapters, store::high_water_key(name), std::to_string(number));
  store::put_version(batch, name, number, config_json, up.blob);
  up.blob = {};  // the batch holds its own copy; do not keep two while the write runs
  const Status written = db_.write(batch, /*sync=*/true);

  std::lock_guard lock(mu_);
  if (!written.ok()) {
    // Nothing changed on disk; the reserved number is simply skipped.
    release_pending_locked(e);
    return written.with_context("adapter '" + name + "': persisting version " +
                                std::to_string(number));
  }
  e->owner = owner;
  e->shared = record.shared;
  e->versions.push_back(up.version);
  int64_t& mark = high_water_[name];
  mark = std::max(mark, number);
  if (!options.stage) {
    e->live_version = number;
    e->split.clear();
    cache_put_locked({name, number}, up.weights);  // a staged version loads when first asked
  }
  release_pending_locked(e);
  return DeployOutcome{up.version, /*created=*/true, /*live=*/!options.stage};
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
    if (!e->versions.empty() && e->live_version != 0 && (e->shared || e->owner == tenant_id)) {
      out.push_back(info_locked(*e));
    }
  }
  return out;
}

Status AdapterRegistry::write_live(Entry& e, AdapterInfo record) {
  QUILT_RETURN_IF_ERROR(db_.put(storage::Family::kAdapters, store::meta_key(e.name),
                                store::encode_record(record), /*sync=*/true));
  std::lock_guard lock(mu_);
  e.live_version = record.live_version;
  e.split = std::move(record.split);
  return Status::OK();
}

Status AdapterRegistry::activate(const std::string& name, int64_t version,
                                 const std::optional<std::string>& owner) {
  return set_split(name, {{version, 1.0}}, owner);
}

Status AdapterRegistry::rollback(const std::string& name, int64_t version,
                                 const std::optional<std::string>& owner) {
  return activate(name, version, owner);
}

Status AdapterRegistry::set_split(const std::string& name, const LiveSplit& split,
                                  const std::optional<std::string>& owner) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    e = find_committed_locked(name, owner);
  }
  if (!e) return not_found(name);

  std::lock_guard write_lock(e->write_mu);
  AdapterInfo record;
  {
    std::lock_guard lock(mu_);
    // Removed (and perhaps taken by another tenant) while we waited.
    if (e->versions.empty() || (owner && e->owner != *owner)) return not_found(name);
    const auto exists = [&](int64_t v) { return e->find_version(v) != nullptr; };
    for (const auto& [version, share] : split) {
      if (version > 0 && !exists(version)) return no_version(name, version);
    }
    QUILT_RETURN_IF_ERROR(validate_split(split, exists));
    record = info_locked(*e);
  }
  record.live_version = primary_version(split);
  record.split = split.size() > 1 ? split : LiveSplit{};  // one version: plainly live
  return write_live(*e, std::move(record));
}

Status AdapterRegistry::remove(const std::string& name, const std::optional<std::string>& owner) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    e = find_committed_locked(name, owner);
  }
  if (!e) return not_found(name);

  std::lock_guard write_lock(e->write_mu);
  {
    std::lock_guard lock(mu_);
    // Removed (and perhaps taken by another tenant) while we waited.
    if (e->versions.empty() || (owner && e->owner != *owner)) return not_found(name);
  }
  // The high-water key stays: a later upload of this name goes on from it.
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
  e->split.clear();
  e->incarnation = next_incarnation_++;  // next_version stays: numbers are never reused
  cache_drop_locked(name);
  if (auto it = entries_.find(name);
      e->pending_deploys == 0 && it != entries_.end() && it->second == e) {
    entries_.erase(it);
  }
  return Status::OK();
}

Status AdapterRegistry::evict(const std::string& name, const std::optional<std::string>& owner) {
  std::lock_guard lock(mu_);
  if (!find_committed_locked(name, owner)) return not_found(name);
  cache_drop_locked(name);
  return Status::OK();
}

}  // namespace quilt::adapters
