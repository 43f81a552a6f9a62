// Tenants, their API keys (stored only as SHA-256 hashes) and the admin key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/database.h"

namespace quilt::tenants {

// 0 means unlimited.
struct Limits {
  int64_t max_concurrent = 0;        // requests in flight at once
  int64_t requests_per_minute = 0;
  int64_t tokens_per_minute = 0;     // prompt + completion tokens
};

struct Tenant {
  std::string id;    // "t_" + 16 hex digits, random
  std::string name;  // 1..128 printable characters
  double weight = 1.0;  // fair-share weight, (0, 1000]
  Limits limits;
  int64_t created = 0;  // unix seconds
};

// What a key may do: call the /v1 inference routes as its tenant, or push and manage that
// tenant's adapters (a CI job's key), nothing else.
enum class KeyScope { kInference, kDeploy };
std::string_view scope_name(KeyScope scope);                  // "inference", "deploy"
std::optional<KeyScope> parse_scope(std::string_view name);  // nullopt for anything else

// Longest accepted KeyOptions::expires_in: ten years.
inline constexpr int64_t kMaxKeyLifetimeSeconds = 10LL * 365 * 24 * 3600;

struct KeyOptions {
  std::string name;                    // "" = unnamed; else 1..128 printable characters
  KeyScope scope = KeyScope::kInference;
  int64_t expires_in = 0;              // seconds from creation, 1..kMaxKeyLifetimeSeconds; 0 = never
};

// A key as listed: never the key itself nor its hash.
struct KeyInfo {
  std::string key_id;  // "k_" + 16 hex digits; names the key in admin routes
  std::string tenant_id;
  std::string name;    // "" when unnamed (keys made before names existed included)
  KeyScope scope = KeyScope::kInference;
  int64_t created = 0;     // unix seconds; 0 when unknown (very old records)
  int64_t expires_at = 0;  // unix seconds; 0 = never
  int64_t last_used = 0;   // unix seconds, to the minute; 0 = never used
};

struct IssuedKey {
  std::string key_id;  // "k_" + 16 hex digits; names the key in admin routes
  std::string key;     // "qk_" + 64 hex digits (256 random bits); shown once, never stored
  KeyInfo info;
};

// Thread-safe. Every change is persisted (synced) before it is visible in memory.
class TenantStore {
 public:
  // Loads every tenant and key hash. `db` must outlive the store.
  static Result<std::unique_ptr<TenantStore>> open(storage::Database& db);

  // InvalidArgument for a bad name, weight or limits (naming the field); nothing is written then.
  Result<Tenant> create(const std::string& name, double weight, const Limits& limits);
  std::vector<Tenant> list() const;
  Result<Tenant> get(const std::string& id) const;  // NotFound
  Result<Tenant> update(const std::string& id, std::optional<double> weight,
                        std::optional<Limits> limits);
  // Deletes the tenant and all its keys in one batch.
  Status remove(const std::string& id);

  // NotFound for an unknown tenant; InvalidArgument naming the option (name, expires_in).
  Result<IssuedKey> create_key(const std::string& tenant_id, const KeyOptions& options = {});
  // The tenant's keys, oldest first; NotFound for an unknown tenant.
  Result<std::vector<KeyInfo>> list_keys(const std::string& tenant_id) const;
  // NotFound when the key does not exist or belongs to another tenant.
  Status revoke_key(const std::string& tenant_id, const std::string& key_id);
  // The tenant id a presented key of any scope belongs to, unless it expired; hashes compared in
  // constant time. Does not count as a use.
  std::optional<std::string> authenticate(std::string_view presented_key) const;
  // The key presented, recording its use: Unauthenticated for an unknown key ("invalid API key")
  // or an expired one (saying so). last_used moves in memory at most once a minute per key and
  // costs no write here; flush_key_use() persists it. `now`: unix seconds, 0 = the clock's.
  Result<KeyInfo> verify_key(std::string_view presented_key, int64_t now = 0);
  // Writes the last_used times changed since the last call (unsynced, like usage); a failed write
  // is retried by the next call.
  Status flush_key_use();

  // The admin key: `configured` (from --admin-key-file / QUILT_ADMIN_KEY) replaces the stored hash;
  // with none configured and none stored, a key is generated, its hash stored, and the key returned
  // (to be printed once). Otherwise returns an empty string.
  Result<std::string> ensure_admin_key(const std::optional<std::string>& configured);
  bool is_admin_key(std::string_view presented_key) const;

 private:
  explicit TenantStore(storage::Database& db) : db_(db) {}
  storage::Database& db_;  // constant after construction
  // Serialises changes from building the batch to updating memory, so memory always matches the
  // last write; held across the synced write, which mu_ never is, so reads never wait on a disk.
  std::mutex write_mu_;
  mutable std::mutex mu_;
  std::map<std::string, Tenant> tenants_;                    // guarded by mu_, by id
  struct KeyRecord {
    KeyInfo info;
    bool use_dirty = false;  // info.last_used not yet written
  };
  std::map<std::string, KeyRecord> keys_by_hash_;            // guarded by mu_, SHA-256 hex → key
  std::string admin_hash_;                                   // guarded by mu_
};

}  // namespace quilt::tenants
