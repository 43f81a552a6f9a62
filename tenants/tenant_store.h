// Tenants, their API keys (stored only as SHA-256 hashes) and the admin key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
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

struct IssuedKey {
  std::string key_id;  // "k_" + 16 hex digits; names the key in admin routes
  std::string key;     // "qk_" + 64 hex digits (256 random bits); shown once, never stored
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

  Result<IssuedKey> create_key(const std::string& tenant_id);
  // NotFound when the key does not exist or belongs to another tenant.
  Status revoke_key(const std::string& tenant_id, const std::string& key_id);
  // The tenant id a presented key belongs to; hashes compared in constant time.
  std::optional<std::string> authenticate(std::string_view presented_key) const;

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
  struct KeyRecord { std::string key_id, tenant_id; };
  std::map<std::string, KeyRecord> keys_by_hash_;            // guarded by mu_, SHA-256 hex → key
  std::string admin_hash_;                                   // guarded by mu_
};

}  // namespace quilt::tenants
