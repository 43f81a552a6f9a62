// The adapter registry: names, versions, owners, visibility, the live version, hot deploys.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
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

// What this server's engine can run; an upload beyond it is refused (Unprocessable) instead of
// being stored and then failing every request.
struct AdapterLimits {
  int64_t max_rank = 0;  // 0: no limit
  // Largest magnitude the compute dtype holds (fp16: 65504): a weight, or a lora_B weight times
  // the scale, beyond it would be Inf on the device.
  double max_abs_value = 3.4028234663852886e38;
};

// Thread-safe. Uploads validate and persist outside the lock, so they never stall resolve().
// Cold adapters are read from storage and converted to the engine's layout on the registry's own
// loader threads, never on the thread that asks (resolve_async).
class AdapterRegistry {
 public:
  using ResolveCallback = std::function<void(Result<ResolvedAdapter>)>;
  static constexpr int kLoaderThreads = 2;

  ~AdapterRegistry();  // drain(), then the loader threads join

  // Loads all metadata (not weights). `db` must outlive the registry. host_cache_bytes bounds
  // the weights kept in memory (LRU; what requests hold stays alive through their shared_ptr).
  static Result<std::unique_ptr<AdapterRegistry>> open(storage::Database& db,
                                                       const engine::ModelConfig& model,
                                                       int64_t host_cache_bytes,
                                                       const AdapterLimits& limits = {});

  // [A-Za-z0-9._-]{1,64}, except "." and ".." (path components, never names).
  static bool valid_name(const std::string& name);

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
  // Loads weights from storage into the host cache when needed; blocks meanwhile (for callers
  // that may wait: CLI, tests. Never call it from a ResolveCallback).
  Result<ResolvedAdapter> resolve(const std::string& ref, const std::string& tenant_id);
  // resolve() for threads that must not block (the gateway's I/O threads). `done` runs exactly
  // once: right here when the answer needs no storage read (cached weights, a bad reference),
  // else on a loader thread once the weights are read and converted there. After drain() a cold
  // load is refused (Unavailable).
  void resolve_async(const std::string& ref, const std::string& tenant_id, ResolveCallback done);
  // Refuses new cold loads and waits for those queued or running, callbacks included: after it
  // returns no callback touches what it captured (the server calls it before freeing the engine).
  void drain();

  // Test hook: runs on the thread that reads a version from storage, just before the read.
  void set_storage_read_hook(std::function<void()> hook);
  // True on one of this registry's loader threads.
  bool on_loader_thread() const;
  // Adapters a tenant may use (its own and the shared ones).
  std::vector<AdapterInfo> visible_to(const std::string& tenant_id) const;

 private:
  struct Entry;        // one adapter name: its metadata and the mutex that orders its writes
  struct PendingLoad;  // one version being read from storage; concurrent resolvers wait on it
  using CacheKey = std::pair<std::string, int64_t>;  // (name, version)
  struct CacheSlot {
    std::shared_ptr<const engine::LoraWeights> weights;
    int64_t bytes = 0;
    std::list<CacheKey>::iterator lru;
  };

  AdapterRegistry(storage::Database& db, const engine::ModelConfig& model, int64_t cache_bytes);
  void run_loader();
  // Reads and converts one version (a loader thread), then answers everyone waiting on it.
  void load(const std::string& name, AdapterVersion version, uint64_t incarnation);

  // The helpers below need mu_ held.
  // The entry of `name` when it has a committed version, else nullptr.
  std::shared_ptr<Entry> find_committed_locked(const std::string& name) const;
  AdapterInfo info_locked(const Entry& e) const;
  // Ends a deploy's hold on `e`; forgets an entry that no deploy ever committed.
  void release_pending_locked(const std::shared_ptr<Entry>& e);
  std::shared_ptr<const engine::LoraWeights> cache_get_locked(const CacheKey& key);
  void cache_put_locked(const CacheKey& key, std::shared_ptr<const engine::LoraWeights> weights);
  void cache_drop_locked(const std::string& name);  // every version of `name`

  storage::Database& db_;            // constant after construction
  engine::ModelConfig model_;        // constant after construction
  int64_t cache_bytes_;              // constant after construction
  AdapterLimits limits_;             // constant after construction
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
  std::map<CacheKey, CacheSlot> cache_;                    // guarded by mu_
  std::list<CacheKey> lru_;                                // guarded by mu_; front: most recent
  int64_t cache_used_ = 0;                                 // guarded by mu_; sum of slot bytes
  // Loads in progress, by (entry incarnation, version): an incarnation is never reused, so a
  // load begun before a remove is never joined by a resolve of a re-uploaded adapter.
  std::map<std::pair<uint64_t, int64_t>, std::shared_ptr<PendingLoad>> loading_;  // guarded by mu_
  uint64_t next_incarnation_ = 1;                                                 // guarded by mu_
  std::function<void()> storage_read_hook_;                                       // guarded by mu_

  // The loader threads and their queue (jobs_mu_ is never held with mu_).
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by jobs_mu_
  int running_jobs_ = 0;                    // guarded by jobs_mu_
  bool draining_ = false;                   // guarded by jobs_mu_
  bool stopping_ = false;                   // guarded by jobs_mu_
  std::vector<std::thread> loaders_;        // constant after construction
};

}  // namespace quilt::adapters
