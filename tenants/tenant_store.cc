// TenantStore: tenants and key hashes as JSON records in RocksDB, mirrored in memory.
#include "tenants/tenant_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

namespace quilt::tenants {
namespace {

using nlohmann::json;
using storage::Family;

constexpr std::string_view kKeyPrefix = "hash:";
constexpr std::string_view kAdminHashKey = "admin_key_sha256";
constexpr size_t kMaxNameChars = 128;
constexpr double kMaxWeight = 1000.0;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string to_hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

// `n` bytes from OpenSSL's CSPRNG, as 2n hex digits.
Result<std::string> random_hex(size_t n) {
  std::vector<unsigned char> bytes(n);
  if (RAND_bytes(bytes.data(), static_cast<int>(n)) != 1)
    return Status::Internal("RAND_bytes failed: no randomness for ids and keys");
  return to_hex(bytes.data(), n);
}

// SHA-256 as 64 hex digits; empty only if OpenSSL fails, which then matches no stored hash.
std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
  return to_hex(digest, len);
}

// Equal lengths and bytes, in time independent of where they differ.
bool hashes_equal(std::string_view a, std::string_view b) {
  return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Names are stored as JSON (which must be valid UTF-8) and shown in consoles and logs, so they are
// checked code point by code point: well-formed UTF-8, no C0/C1 controls, 1..128 code points.
Status validate_name(const std::string& name) {
  size_t chars = 0;
  for (size_t i = 0; i < name.size(); ++chars) {
    const auto c = static_cast<unsigned char>(name[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    if (len == 0 || i + len > name.size()) return Status::InvalidArgument("name: not valid UTF-8");
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(name[i + k]);
      if ((cc & 0xc0) != 0x80) return Status::InvalidArgument("name: not valid UTF-8");
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return Status::InvalidArgument("name: not valid UTF-8");
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
      return Status::InvalidArgument("name: control characters are not allowed");
    i += len;
  }
  if (chars == 0) return Status::InvalidArgument("name: must not be empty");
  if (chars > kMaxNameChars)
    return Status::InvalidArgument("name: longer than " + std::to_string(kMaxNameChars) +
                                   " characters");
  return Status::OK();
}

Status validate_weight(double weight) {
  if (!std::isfinite(weight) || weight <= 0 || weight > kMaxWeight)
    return Status::InvalidArgument("weight: must be a number in (0, 1000]");
  return Status::OK();
}

Status validate_limits(const Limits& l) {
  if (l.max_concurrent < 0) return Status::InvalidArgument("limits.max_concurrent: must be >= 0");
  if (l.requests_per_minute < 0)
    return Status::InvalidArgument("limits.requests_per_minute: must be >= 0");
  if (l.tokens_per_minute < 0)
    return Status::InvalidArgument("limits.tokens_per_minute: must be >= 0");
  return Status::OK();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string tenant_json(const Tenant& t) {
  return dump({{"id", t.id},
               {"name", t.name},
               {"weight", t.weight},
               {"limits",
                {{"max_concurrent", t.limits.max_concurrent},
                 {"requests_per_minute", t.limits.requests_per_minute},
                 {"tokens_per_minute", t.limits.tokens_per_minute}}},
               {"created", t.created}});
}

// Records are ours, so a record that does not parse means a damaged database: refuse to start
// rather than silently drop a tenant or a key.
Result<Tenant> parse_tenant(const std::string& key, const std::string& value) {
  try {
    const json j = json::parse(value);
    Tenant t;
    t.id = j.at("id").get<std::string>();
    t.name = j.at("name").get<std::string>();
    t.weight = j.at("weight").get<double>();
    const json& l = j.at("limits");
    t.limits.max_concurrent = l.at("max_concurrent").get<int64_t>();
    t.limits.requests_per_minute = l.at("requests_per_minute").get<int64_t>();
    t.limits.tokens_per_minute = l.at("tokens_per_minute").get<int64_t>();
    t.created = j.at("created").get<int64_t>();
    if (t.id != key) return Status::IOError("tenant record " + key + " holds id " + t.id);
    return t;
  } catch (const json::exception& e) {
    return Status::IOError("corrupt tenant record " + key + ": " + e.what());
  }
}

// A key record: the fields of KeyInfo. Records written before names and scopes existed hold only
// key_id, tenant_id and created; they load as unnamed inference keys that never expire.
std::string key_record_json(const KeyInfo& k) {
  json j = {{"key_id", k.key_id},
            {"tenant_id", k.tenant_id},
            {"created", k.created},
            {"scope", scope_name(k.scope)}};
  if (!k.name.empty()) j["name"] = k.name;
  if (k.expires_at > 0) j["expires_at"] = k.expires_at;
  if (k.last_used > 0) j["last_used"] = k.last_used;
  return dump(j);
}

Result<KeyInfo> parse_key_record(const std::string& key, const std::string& value) {
  try {
    const json j = json::parse(value);
    KeyInfo k;
    k.key_id = j.at("key_id").get<std::string>();
    k.tenant_id = j.at("tenant_id").get<std::string>();
    k.created = j.value("created", int64_t{0});
    k.name = j.value("name", std::string());
    const std::string scope = j.value("scope", std::string(scope_name(KeyScope::kInference)));
    std::optional<KeyScope> parsed = parse_scope(scope);
    if (!parsed) return Status::IOError("key record " + key + ": unknown scope '" + scope + "'");
    k.scope = *parsed;
    k.expires_at = j.value("expires_at", int64_t{0});
    k.last_used = j.value("last_used", int64_t{0});
    return k;
  } catch (const json::exception& e) {
    return Status::IOError("corrupt key record " + key + ": " + e.what());
  }
}

bool expired(const KeyInfo& k, int64_t now) { return k.expires_at > 0 && now >= k.expires_at; }

// last_used is kept to the minute: a key used all day costs one write a minute at most.
constexpr int64_t kLastUsedResolution = 60;

}  // namespace

std::string_view scope_name(KeyScope scope) {
  return scope == KeyScope::kDeploy ? "deploy" : "inference";
}

std::optional<KeyScope> parse_scope(std::string_view name) {
  if (name == "inference") return KeyScope::kInference;
  if (name == "deploy") return KeyScope::kDeploy;
  return std::nullopt;
}

Result<std::unique_ptr<TenantStore>> TenantStore::open(storage::Database& db) {
  std::unique_ptr<TenantStore> store(new TenantStore(db));
  QUILT_ASSIGN_OR_RETURN(auto tenants, db.scan(Family::kTenants, ""));
  for (const auto& [key, value] : tenants) {
    QUILT_ASSIGN_OR_RETURN(Tenant t, parse_tenant(key, value));
    store->tenants_.emplace(t.id, std::move(t));
  }
  QUILT_ASSIGN_OR_RETURN(auto keys, db.scan(Family::kKeys, kKeyPrefix));
  for (const auto& [key, value] : keys) {
    QUILT_ASSIGN_OR_RETURN(KeyInfo info, parse_key_record(key, value));
    // remove() deletes a tenant's keys in the same batch, so an orphan is not expected; if one
    // exists anyway it must not authenticate.
    if (!store->tenants_.count(info.tenant_id)) continue;
    store->keys_by_hash_.emplace(key.substr(kKeyPrefix.size()), KeyRecord{std::move(info)});
  }
  QUILT_ASSIGN_OR_RETURN(auto admin, db.get(Family::kMeta, kAdminHashKey));
  if (admin) store->admin_hash_ = *admin;
  return store;
}

Result<Tenant> TenantStore::create(const std::string& name, double weight, const Limits& limits) {
  QUILT_RETURN_IF_ERROR(validate_name(name));
  QUILT_RETURN_IF_ERROR(validate_weight(weight));
  QUILT_RETURN_IF_ERROR(validate_limits(limits));
  std::lock_guard write_lock(write_mu_);
  Tenant t;
  do {  // 64 random bits: a collision is all but impossible, but cheap to rule out
    QUILT_ASSIGN_OR_RETURN(std::string hex, random_hex(8));
    t.id = "t_" + hex;
  } while (get(t.id).ok());
  t.name = name;
  t.weight = weight;
  t.limits = limits;
  t.created = unix_now();
  storage::WriteBatch batch;
  batch.put(Family::kTenants, t.id, tenant_json(t));
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));
  std::lock_guard lock(mu_);
  tenants_.emplace(t.id, t);
  return t;
}

std::vector<Tenant> TenantStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<Tenant> out;
  out.reserve(tenants_.size());
  for (const auto& [id, t] : tenants_) out.push_back(t);
  return out;
}

Result<Tenant> TenantStore::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(id);
  if (it == tenants_.end()) return Status::NotFound("tenant '" + id + "' not found");
  return it->second;
}

Result<Tenant> TenantStore::update(const std::string& id, std::optional<double> weight,
                                   std::optional<Limits> limits) {
  if (weight) QUILT_RETURN_IF_ERROR(validate_weight(*weight));
  if (limits) QUILT_RETURN_IF_ERROR(validate_limits(*limits));
  std::lock_guard write_lock(write_mu_);
  QUILT_ASSIGN_OR_RETURN(Tenant t, get(id));
  if (weight) t.weight = *weight;
  if (limits) t.limits = *limits;
  storage::WriteBatch batch;
  batch.put(Family::kTenants, t.id, tenant_json(t));
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));
  std::lock_guard lock(mu_);
  tenants_[id] = t;
  return t;
}

Status TenantStore::remove(const std::string& id) {
  std::lock_guard write_lock(write_mu_);
  storage::WriteBatch batch;
  std::vector<std::string> hashes;
  {
    std::lock_guard lock(mu_);
    if (!tenants_.count(id)) return Status::NotFound("tenant '" + id + "' not found");
    for (const auto& [hash, record] : keys_by_hash_)
      if (record.info.tenant_id == id) hashes.push_back(hash);
  }
  batch.remove(Family::kTenants, id);
  for (const auto& hash : hashes) batch.remove(Family::kKeys, std::string(kKeyPrefix) + hash);
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));
  std::lock_guard lock(mu_);
  tenants_.erase(id);
  for (const auto& hash : hashes) keys_by_hash_.erase(hash);
  return Status::OK();
}

Result<IssuedKey> TenantStore::create_key(const std::string& tenant_id, const KeyOptions& options) {
  if (!options.name.empty()) QUILT_RETURN_IF_ERROR(validate_name(options.name));
  if (options.expires_in < 0 || options.expires_in > kMaxKeyLifetimeSeconds) {
    return Status::InvalidArgument("expires_in: must be between 1 and " +
                                   std::to_string(kMaxKeyLifetimeSeconds) + " seconds");
  }
  std::lock_guard write_lock(write_mu_);
  QUILT_RETURN_IF_ERROR(get(tenant_id).status());
  IssuedKey issued;
  QUILT_ASSIGN_OR_RETURN(std::string secret, random_hex(32));
  issued.key = "qk_" + secret;
  QUILT_ASSIGN_OR_RETURN(std::string key_hex, random_hex(8));
  issued.key_id = "k_" + key_hex;
  const std::string hash = sha256_hex(issued.key);
  if (hash.empty()) return Status::Internal("SHA-256 failed");
  KeyInfo& info = issued.info;
  info.key_id = issued.key_id;
  info.tenant_id = tenant_id;
  info.name = options.name;
  info.scope = options.scope;
  info.created = unix_now();
  if (options.expires_in > 0) info.expires_at = info.created + options.expires_in;
  storage::WriteBatch batch;
  batch.put(Family::kKeys, std::string(kKeyPrefix) + hash, key_record_json(info));
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));
  std::lock_guard lock(mu_);
  keys_by_hash_[hash] = KeyRecord{info};
  return issued;
}

Result<std::vector<KeyInfo>> TenantStore::list_keys(const std::string& tenant_id) const {
  std::lock_guard lock(mu_);
  if (!tenants_.count(tenant_id)) return Status::NotFound("tenant '" + tenant_id + "' not found");
  std::vector<KeyInfo> out;
  for (const auto& [hash, record] : keys_by_hash_)
    if (record.info.tenant_id == tenant_id) out.push_back(record.info);
  std::stable_sort(out.begin(), out.end(), [](const KeyInfo& a, const KeyInfo& b) {
    return a.created != b.created ? a.created < b.created : a.key_id < b.key_id;
  });
  return out;
}

Status TenantStore::revoke_key(const std::string& tenant_id, const std::string& key_id) {
  std::lock_guard write_lock(write_mu_);
  std::string hash;
  {
    std::lock_guard lock(mu_);
    for (const auto& [h, record] : keys_by_hash_) {
      if (record.info.key_id == key_id && record.info.tenant_id == tenant_id) {
        hash = h;
        break;
      }
    }
  }
  // The same answer whether the key does not exist or is another tenant's.
  if (hash.empty()) return Status::NotFound("key '" + key_id + "' not found for this tenant");
  storage::WriteBatch batch;
  batch.remove(Family::kKeys, std::string(kKeyPrefix) + hash);
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));
  std::lock_guard lock(mu_);
  keys_by_hash_.erase(hash);
  return Status::OK();
}

std::optional<std::string> TenantStore::authenticate(std::string_view presented_key) const {
  const std::string hash = sha256_hex(presented_key);
  const int64_t now = unix_now();
  std::lock_guard lock(mu_);
  // The map lookup compares hashes, not keys, so its timing says nothing useful about any key;
  // the constant-time compare below is the one that decides.
  auto it = keys_by_hash_.find(hash);
  if (it == keys_by_hash_.end() || !hashes_equal(it->first, hash)) return std::nullopt;
  if (!tenants_.count(it->second.info.tenant_id) || expired(it->second.info, now)) return std::nullopt;
  return it->second.info.tenant_id;
}

Result<KeyInfo> TenantStore::verify_key(std::string_view presented_key, int64_t now) {
  if (now == 0) now = unix_now();
  const std::string hash = sha256_hex(presented_key);
  std::lock_guard lock(mu_);
  auto it = keys_by_hash_.find(hash);
  if (it == keys_by_hash_.end() || !hashes_equal(it->first, hash) ||
      !tenants_.count(it->second.info.tenant_id)) {
    return Status::Unauthenticated("invalid API key");
  }
  KeyRecord& record = it->second;
  if (expired(record.info, now)) {
    return Status::Unauthenticated("API key " + record.info.key_id + " expired at unix time " +
                                   std::to_string(record.info.expires_at));
  }
  if (now - record.info.last_used >= kLastUsedResolution) {
    record.info.last_used = now - now % kLastUsedResolution;
    record.use_dirty = true;
  }
  return record.info;
}

Status TenantStore::flush_key_use() {
  // write_mu_ orders this with revoke_key() and remove(): a key revoked meanwhile is not in the
  // map any more, so its record is never written back.
  std::lock_guard write_lock(write_mu_);
  storage::WriteBatch batch;
  std::vector<std::string> taken;
  {
    std::lock_guard lock(mu_);
    for (auto& [hash, record] : keys_by_hash_) {
      if (!record.use_dirty) continue;
      batch.put(Family::kKeys, std::string(kKeyPrefix) + hash, key_record_json(record.info));
      record.use_dirty = false;
      taken.push_back(hash);
    }
  }
  if (taken.empty()) return Status::OK();
  // Unsynced: a last-use time is not worth an fsync; an OS crash loses at most the latest.
  Status s = db_.write(batch, /*sync=*/false);
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    for (const auto& hash : taken)
      if (auto it = keys_by_hash_.find(hash); it != keys_by_hash_.end()) it->second.use_dirty = true;
    return s.with_context("key last-use flush");
  }
  return Status::OK();
}

Result<std::string> TenantStore::ensure_admin_key(const std::optional<std::string>& configured) {
  std::lock_guard write_lock(write_mu_);
  std::string key;
  if (configured) {
    // A key read from a file usually ends in a newline that nobody means as part of the key.
    key = *configured;
    constexpr std::string_view kSpace = " \t\r\n";
    key.erase(0, std::min(key.size(), key.find_first_not_of(kSpace)));
    key.erase(key.find_last_not_of(kSpace) + 1);
    if (key.empty()) return Status::InvalidArgument("admin key: the configured key is empty");
  } else {
    {
      std::lock_guard lock(mu_);
      if (!admin_hash_.empty()) return std::string();
    }
    QUILT_ASSIGN_OR_RETURN(std::string secret, random_hex(32));
    key = "qa_" + secret;
  }
  const std::string hash = sha256_hex(key);
  if (hash.empty()) return Status::Internal("SHA-256 failed");
  {
    std::lock_guard lock(mu_);
    if (admin_hash_ == hash) return std::string();  // configured key already stored
  }
  storage::WriteBatch batch;
  batch.put(Family::kMeta, kAdminHashKey, hash);
  QUILT_RETURN_IF_ERROR(db_.write(batch, /*sync=*/true));
  std::lock_guard lock(mu_);
  admin_hash_ = hash;
  return configured ? std::string() : key;
}

bool TenantStore::is_admin_key(std::string_view presented_key) const {
  const std::string hash = sha256_hex(presented_key);
  std::lock_guard lock(mu_);
  return hashes_equal(admin_hash_, hash);
}

}  // namespace quilt::tenants
