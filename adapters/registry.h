// The adapter registry: names, versions, owners, visibility, the live version, hot deploys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/model/lora_weights.h"
#include "engine/model/model_config.h"
#include "storage/database.h"

namespace quilt::adapters {

struct AdapterVersion {
  int64_t version = 0;  // 1, 2, ...
  int64_t rank = 0;     // the largest rank of any module
  std::vector<std::string> target_modules;  // e.g. {"q_proj", "v_proj"}
  int64_t bytes = 0;    // size of the uploaded safetensors file
  int64_t created = 0;  // unix seconds
};

struct AdapterInfo {
  std::string name;
  std::string owner;  // tenant id
  bool shared = false;
  int64_t live_version = 0;
  std::vector<AdapterVersion> versions;  // ascending
  bool host_resident = false;  // the live version's weights are in the host cache
};

// A resolved reference: the exact version a request runs on, pinned for its whole life.
struct ResolvedAdapter {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const engine::LoraWeights> weights;
};

// Thread-safe. Uploads validate and persist outside the lock, so they never stall resolve().
class AdapterRegistry {
 public:
  // Loads all metadata (not weights). `db` must outlive the registry. host_cache_bytes bounds
  // the weights kept in memory (LRU; what requests hold stays alive through their shared_ptr).
  static Result<std::unique_ptr<AdapterRegistry>> open(storage::Database& db,
                                                       const engine::ModelConfig& model,
                                                       int64_t host_cache_bytes);

  static bool valid_name(const std::string& name);  // [A-Za-z0-9._-]{1,64}

  // Hot deploy: validates config + weights against the base model (Unprocessable naming what
  // does not fit), persists version metadata, weights and the live pointer in one synced batch,
  // then switches the live version. `weights_file` is read, not kept. InvalidArgument for a bad
  // name or an owner that differs from the adapter's existing owner.
  Result<AdapterVersion> deploy(const std::string& name, const std::string& owner, bool shared,
                                const std::string& config_json,
                                const std::filesystem::path& weights_file);

  std::vector<AdapterInfo> list() const;
  Result<AdapterInfo> info(const std::string& name) const;  // NotFound
  Status rollback(const std::string& name, int64_t version);
  // Removes every version (one batch). Requests in flight keep their weights alive.
  Status remove(const std::string& name);
  // Drops the host copies of every version; they load again from storage on demand.
  Status evict(const std::string& name);

  // "name" (the live version) or "name@N", for a tenant: NotFound (same message whether it does
  // not exist or the tenant may not use it) unless it is the tenant's own or shared.
  // Loads weights from storage into the host cache when needed.
  Result<ResolvedAdapter> resolve(const std::string& ref, const std::string& tenant_id);
  // Adapters a tenant may use (its own and the shared ones).
  std::vector<AdapterInfo> visible_to(const std::string& tenant_id) const;

 private:
  struct Entry;
  AdapterRegistry(storage::Database& db, const engine::ModelConfig& model, int64_t cache_bytes);

  storage::Database& db_;            // constant after construction
  engine::ModelConfig model_;        // constant after construction
  int64_t cache_bytes_;              // constant after construction
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
};

}  // namespace quilt::adapters
