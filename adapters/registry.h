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

#include "adapters/live_split.h"
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
  // Hex SHA-256 of the uploaded safetensors file and of adapter_config.json as uploaded; empty
  // for versions stored before they were recorded (such versions never match a re-push).
  std::string sha256;
  std::string config_sha256;
  std::string uploaded_by;          // "admin", or the id of the deploy key that pushed it
  std::string metadata = "{}";      // free-form JSON object given at upload (compact)
};

// The upload's free-form `metadata` is at most this many bytes of JSON.
inline constexpr size_t kMaxMetadataBytes = 4096;

struct AdapterInfo {
  std::string name;
  std::string owner;  // tenant id
  bool shared = false;
  // The version that "name" runs on; with a canary split, the one with the largest share. 0
  // while every version is staged (then only "name@N" resolves).
  int64_t live_version = 0;
  LiveSplit split;                       // empty: live_version takes all the traffic
  std::vector<AdapterVersion> versions;  // ascending
  bool host_resident = false;  // the live version's weights are in the host cache

  // The traffic shares: the split, or {live_version: 1}; empty when nothing is live.
  LiveSplit live() const;
};

// How a version is pushed (see deploy()).
struct DeployOptions {
  std::optional<bool> shared;         // nullopt: keep the adapter's setting (false when new)
  bool stage = false;                 // persist, but leave the live version(s) as they are
  std::string uploaded_by = "admin";  // recorded with the version
  std::string metadata = "{}";        // a JSON object of at most kMaxMetadataBytes
};

struct DeployOutcome {
  AdapterVersion version;
  bool created = true;  // false: this content was already stored as `version`; nothing changed
  bool live = false;    // `version` takes live traffic (alone or in the split)
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
  // then switches the live version (unless options.stage: then the version is stored but not
  // live). `weights_file` is read, not kept. InvalidArgument for a bad name, bad metadata, or
  // an owner that differs from the adapter's existing owner.
  //
  // Idempotent: when a stored version of `name` has the same weights and config (SHA-256), that
  // version is the answer (created = false) and nothing changes, shared flag, metadata and live
  // traffic included. Version numbers are never reused, even after remove() and a restart.
  Result<DeployOutcome> deploy(const std::string& name, const std::string& owner,
                               const std::string& config_json,
                               const std::filesystem::path& weights_file,
                               const DeployOptions& options);
  // The same with default options but `shared`; returns the version.
  Result<AdapterVersion> deploy(const std::string& name, const std::string& owner, bool shared,
                                const std::string& config_json,
                                const std::filesystem::path& weights_file);
  // InvalidArgument("metadata: ...") unless `metadata` is a JSON object of at most
  // kMaxMetadataBytes; else its compact form.
  static Result<std::string> normalize_metadata(const std::string& metadata);

  std::vector<AdapterInfo> list() const;
  Result<AdapterInfo> info(const std::string& name) const;  // NotFound

  // The changes below take `owner`: when set, an adapter another tenant owns is NotFound, exactly
  // like a missing one, checked atomically with the change (a deploy key's tenant). nullopt: any.
  //
  // Makes `version` take all the traffic of "name" (a staged version goes live; a canary split
  // ends). NotFound for an unknown adapter or version. rollback() is the same operation.
  Status activate(const std::string& name, int64_t version, const std::optional<std::string>& owner = {});
  Status rollback(const std::string& name, int64_t version, const std::optional<std::string>& owner = {});
  // Splits the traffic of "name" over versions (see live_split.h); a single version is
  // activate(). validate_split's errors; NotFound for an unknown adapter.
  Status set_split(const std::string& name, const LiveSplit& split,
                   const std::optional<std::string>& owner = {});
  // Removes every version (one batch). Requests in flight keep their weights alive.
  Status remove(const std::string& name, const std::optional<std::string>& owner = {});
  // Drops the host copies of every version; they load again from storage on demand.
  Status evict(const std::string& name, const std::optional<std::string>& owner = {});

  // "name" (the live version, or one drawn by the canary split) or "name@N" (any stored version,
  // a staged one included), for a tenant: NotFound (same message whether it does
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
  // The host tier's counters for /metrics: versions read from storage into the host cache, and
  // versions dropped from it to make room (LRU). Thread-safe.
  struct HostCacheStats {
    uint64_t loads = 0;
    uint64_t evictions = 0;
  };
  HostCacheStats host_cache_stats() const;

  // True on one of this registry's loader threads.
  bool on_loader_thread() const;
  // Adapters a tenant may use (its own and the shared ones) with a live version.
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
  // The entry of `name` when it has a committed version (owned by `owner` when that is set),
  // else nullptr.
  std::shared_ptr<Entry> find_committed_locked(const std::string& name,
                                               const std::optional<std::string>& owner = {}) const;
  AdapterInfo info_locked(const Entry& e) const;
  // Ends a deploy's hold on `e`; forgets an entry that no deploy ever committed.
  void release_pending_locked(const std::shared_ptr<Entry>& e);
  std::shared_ptr<const engine::LoraWeights> cache_get_locked(const CacheKey& key);
  void cache_put_locked(const CacheKey& key, std::shared_ptr<const engine::LoraWeights> weights);
  void cache_drop_locked(const std::string& name);  // every version of `name`

  // Persists `record` as the metadata of e's name and applies its live fields to `e`; needs
  // e->write_mu held, not mu_.
  Status write_live(Entry& e, AdapterInfo record);

  storage::Database& db_;            // constant after construction
  engine::ModelConfig model_;        // constant after construction
  int64_t cache_bytes_;              // constant after construction
  AdapterLimits limits_;             // constant after construction
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
  std::map<CacheKey, CacheSlot> cache_;                    // guarded by mu_
  std::list<CacheKey> lru_;                                // guarded by mu_; front: most recent
  int64_t cache_used_ = 0;                                 // guarded by mu_; sum of slot bytes
  HostCacheStats host_stats_;                              // guarded by mu_
  // Loads in progress, by (entry incarnation, version): an incarnation is never reused, so a
  // load begun before a remove is never joined by a resolve of a re-uploaded adapter.
  std::map<std::pair<uint64_t, int64_t>, std::shared_ptr<PendingLoad>> loading_;  // guarded by mu_
  uint64_t next_incarnation_ = 1;                                                 // guarded by mu_
  // The highest version number ever given to each name, kept after remove() (and persisted),
  // so that numbers are never reused.
  std::map<std::string, int64_t> high_water_;                                     // guarded by mu_
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
