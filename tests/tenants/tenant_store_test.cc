// Tests of TenantStore: tenants, validation, keys, hashing, reopen and the admin key.
#include "tenants/tenant_store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "tests/storage/temp_dir.h"

namespace quilt::tenants {
namespace {

using quilt::testing::TempDir;
using storage::Family;

constexpr Family kAllFamilies[] = {Family::kMeta,     Family::kTenants,      Family::kKeys,
                                   Family::kAdapters, Family::kAdapterBlobs, Family::kUsage};

class TenantStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  // Drops the store and the database and opens both again from disk.
  void reopen() {
    store_.reset();
    db_.reset();
    auto db = storage::Database::open(dir_.path() / "db");
    ASSERT_TRUE(db.ok()) << db.status().message();
    db_ = std::move(db).value();
    auto store = TenantStore::open(*db_);
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
  }

  Tenant make(const std::string& name, double weight = 1.0, Limits limits = {}) {
    auto t = store_->create(name, weight, limits);
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? *t : Tenant{};
  }

  // Every key and value of every family, concatenated: for "appears nowhere" checks.
  std::string everything_stored() {
    std::string all;
    for (Family f : kAllFamilies) {
      auto kv = db_->scan(f, "");
      EXPECT_TRUE(kv.ok());
      for (const auto& [k, v] : *kv) all += k + "\n" + v + "\n";
    }
    return all;
  }

  TempDir dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<TenantStore> store_;
};

TEST_F(TenantStoreTest, CreateListGetUpdateRemove) {
  const Tenant a = make("Acme", 2.5, Limits{4, 60, 1000});
  const Tenant b = make("Beta Corp");
  EXPECT_TRUE(std::regex_match(a.id, std::regex("t_[0-9a-f]{16}"))) << a.id;
  EXPECT_NE(a.id, b.id);
  EXPECT_GT(a.created, 0);

  auto got = store_->get(a.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "Acme");
  EXPECT_EQ(got->weight, 2.5);
  EXPECT_EQ(got->limits.max_concurrent, 4);
  EXPECT_EQ(got->limits.requests_per_minute, 60);
  EXPECT_EQ(got->limits.tokens_per_minute, 1000);
  EXPECT_EQ(store_->list().size(), 2u);

  auto updated = store_->update(a.id, 7.0, std::nullopt);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->weight, 7.0);
  EXPECT_EQ(updated->limits.max_concurrent, 4) << "limits not given: unchanged";
  updated = store_->update(a.id, std::nullopt, Limits{1, 2, 3});
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->weight, 7.0);
  EXPECT_EQ(store_->get(a.id)->limits.tokens_per_minute, 3);

  EXPECT_TRUE(store_->remove(a.id).ok());
  EXPECT_TRUE(store_->get(a.id).status().IsNotFound());
  EXPECT_TRUE(store_->remove(a.id).IsNotFound());
  EXPECT_TRUE(store_->update(a.id, 1.0, std::nullopt).status().IsNotFound());
  ASSERT_EQ(store_->list().size(), 1u);
  EXPECT_EQ(store_->list()[0].id, b.id);
}

TEST_F(TenantStoreTest, BadInputsNameTheFieldAndChangeNothing) {
  const Tenant t = make("ok");
  const std::string before = everything_stored();
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    std::string name;
    double weight;
    Limits limits;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"", 1, {}, "name"},
      {std::string(129, 'x'), 1, {}, "name"},
      {"tab\there", 1, {}, "name"},
      {"nl\n", 1, {}, "name"},
      {"del\x7f", 1, {}, "name"},
      {"c1 \xc2\x85", 1, {}, "name"},  // U+0085, a C1 control
      {"bad \xff utf8", 1, {}, "name"},
      {"overlong \xc0\xaf", 1, {}, "name"},
      {"cut \xe2\x82", 1, {}, "name"},
      {"x", 0, {}, "weight"},
      {"x", -1, {}, "weight"},
      {"x", 1000.5, {}, "weight"},
      {"x", inf, {}, "weight"},
      {"x", nan, {}, "weight"},
      {"x", 1, {-1, 0, 0}, "limits.max_concurrent"},
      {"x", 1, {0, -1, 0}, "limits.requests_per_minute"},
      {"x", 1, {0, 0, -5}, "limits.tokens_per_minute"},
  };
  for (const auto& c : cases) {
    auto r = store_->create(c.name, c.weight, c.limits);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_TRUE(r.status().IsInvalidArgument()) << c.field;
    EXPECT_EQ(r.status().message().rfind(c.field + ":", 0), 0u) << r.status().message();
  }
  EXPECT_TRUE(store_->update(t.id, nan, std::nullopt).status().IsInvalidArgument());
  EXPECT_TRUE(store_->update(t.id, 2.0, Limits{0, -1, 0}).status().IsInvalidArgument());
  EXPECT_EQ(store_->list().size(), 1u);
  EXPECT_EQ(store_->get(t.id)->weight, 1.0) << "a refused update changed the weight";
  EXPECT_EQ(everything_stored(), before);

  // The edges that are allowed: 128 characters (multi-byte ones count once), weight 1000.
  std::string name128;
  for (int i = 0; i < 128; ++i) name128 += "\xc3\xa9";  // é
  EXPECT_TRUE(store_->create(name128, 1000, {}).ok());
  EXPECT_TRUE(store_->create("😀 emoji", 1e-6, {}).ok());
}

TEST_F(TenantStoreTest, KeysAuthenticateUntilRevokedOrTenantRemoved) {
  const Tenant a = make("a");
  const Tenant b = make("b");
  auto k1 = store_->create_key(a.id);
  auto k2 = store_->create_key(a.id);
  auto kb = store_->create_key(b.id);
  ASSERT_TRUE(k1.ok() && k2.ok() && kb.ok());
  EXPECT_TRUE(std::regex_match(k1->key, std::regex("qk_[0-9a-f]{64}"))) << k1->key;
  EXPECT_TRUE(std::regex_match(k1->key_id, std::regex("k_[0-9a-f]{16}"))) << k1->key_id;
  EXPECT_NE(k1->key, k2->key);

  EXPECT_EQ(store_->authenticate(k1->key), a.id);
  EXPECT_EQ(store_->authenticate(k2->key), a.id);
  EXPECT_EQ(store_->authenticate(kb->key), b.id);
  EXPECT_EQ(store_->authenticate(""), std::nullopt);
  EXPECT_EQ(store_->authenticate("qk_" + std::string(64, '0')), std::nullopt);
  EXPECT_EQ(store_->authenticate(k1->key + "x"), std::nullopt);
  EXPECT_TRUE(store_->create_key("t_nope").status().IsNotFound());

  // Another tenant's key id, or an unknown one: NotFound, and the key keeps working.
  EXPECT_TRUE(store_->revoke_key(b.id, k1->key_id).IsNotFound());
  EXPECT_TRUE(store_->revoke_key(a.id, "k_0000000000000000").IsNotFound());
  EXPECT_EQ(store_->authenticate(k1->key), a.id);

  ASSERT_TRUE(store_->revoke_key(a.id, k1->key_id).ok());
  EXPECT_EQ(store_->authenticate(k1->key), std::nullopt) << "revoked key still works";
  EXPECT_EQ(store_->authenticate(k2->key), a.id);
  EXPECT_TRUE(store_->revoke_key(a.id, k1->key_id).IsNotFound());

  ASSERT_TRUE(store_->remove(a.id).ok());
  EXPECT_EQ(store_->authenticate(k2->key), std::nullopt) << "key of a removed tenant works";
  EXPECT_EQ(store_->authenticate(kb->key), b.id);
  auto keys = db_->scan(Family::kKeys, "");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 1u) << "remove() left key records behind";

  reopen();
  EXPECT_EQ(store_->authenticate(k1->key), std::nullopt);
  EXPECT_EQ(store_->authenticate(k2->key), std::nullopt);
  EXPECT_EQ(store_->authenticate(kb->key), b.id);
}

TEST_F(TenantStoreTest, OnlyHashesAreStored) {
  const Tenant t = make("hashed");
  auto key = store_->create_key(t.id);
  ASSERT_TRUE(key.ok());
  auto admin = store_->ensure_admin_key(std::nullopt);
  ASSERT_TRUE(admin.ok());
  ASSERT_FALSE(admin->empty());
  ASSERT_TRUE(db_->flush().ok());
  const std::string all = everything_stored();
  EXPECT_EQ(all.find(key->key), std::string::npos);
  EXPECT_EQ(all.find(key->key.substr(3)), std::string::npos) << "the key's hex part is stored";
  EXPECT_EQ(all.find(*admin), std::string::npos);
  EXPECT_EQ(all.find(admin->substr(3)), std::string::npos);
  EXPECT_NE(all.find(key->key_id), std::string::npos);

  // Nor anywhere in the files: the WAL, SSTs and logs.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path())) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(key->key.substr(3)), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find(admin->substr(3)), std::string::npos) << entry.path();
  }
}

TEST_F(TenantStoreTest, ReopenKeepsTenantsKeysAndAdminHash) {
  const Tenant t = make("persist", 3.25, Limits{2, 30, 500});
  auto key = store_->create_key(t.id);
  ASSERT_TRUE(key.ok());
  auto admin = store_->ensure_admin_key(std::nullopt);
  ASSERT_TRUE(admin.ok());

  reopen();
  auto got = store_->get(t.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "persist");
  EXPECT_EQ(got->weight, 3.25);
  EXPECT_EQ(got->limits.requests_per_minute, 30);
  EXPECT_EQ(got->created, t.created);
  EXPECT_EQ(store_->authenticate(key->key), t.id);
  EXPECT_TRUE(store_->is_admin_key(*admin));
  EXPECT_TRUE(store_->revoke_key(t.id, key->key_id).ok()) << "key ids survive a reopen too";
}

TEST_F(TenantStoreTest, AdminKeyIsGeneratedOnceAndReplacedByAConfiguredOne) {
  EXPECT_FALSE(store_->is_admin_key("anything"));
  EXPECT_FALSE(store_->is_admin_key(""));
  auto first = store_->ensure_admin_key(std::nullopt);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(std::regex_match(*first, std::regex("qa_[0-9a-f]{64}"))) << *first;
  EXPECT_TRUE(store_->is_admin_key(*first));
  EXPECT_FALSE(store_->is_admin_key(*first + "x"));

  reopen();
  auto second = store_->ensure_admin_key(std::nullopt);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, "") << "a second start must not print a new key";
  EXPECT_TRUE(store_->is_admin_key(*first));

  auto configured = store_->ensure_admin_key(std::string("my-admin-secret\n"));
  ASSERT_TRUE(configured.ok());
  EXPECT_EQ(*configured, "") << "a configured key is never echoed";
  EXPECT_TRUE(store_->is_admin_key("my-admin-secret")) << "the file's newline is not the key";
  EXPECT_FALSE(store_->is_admin_key(*first)) << "the generated key was not replaced";
  EXPECT_TRUE(store_->ensure_admin_key(std::string(" \n")).status().IsInvalidArgument());
  EXPECT_TRUE(store_->is_admin_key("my-admin-secret"));

  reopen();
  EXPECT_TRUE(store_->is_admin_key("my-admin-secret"));
  auto again = store_->ensure_admin_key(std::nullopt);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, "");
  EXPECT_TRUE(store_->is_admin_key("my-admin-secret"));

  // A tenant key is not the admin key, and the admin key is no tenant's.
  const Tenant t = make("t");
  auto key = store_->create_key(t.id);
  ASSERT_TRUE(key.ok());
  EXPECT_FALSE(store_->is_admin_key(key->key));
  EXPECT_EQ(store_->authenticate("my-admin-secret"), std::nullopt);
}

TEST_F(TenantStoreTest, ConcurrentChangesAndReadsStayConsistent) {
  const Tenant t = make("shared");
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> keys;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        auto k = store_->create_key(t.id);
        ASSERT_TRUE(k.ok());
        ASSERT_EQ(store_->authenticate(k->key), t.id);
        ASSERT_TRUE(store_->update(t.id, 1.0 + i, std::nullopt).ok());
        std::lock_guard lock(mu);
        keys.insert(k->key);
      }
    });
  }
  for (auto& th : threads) th.join();
  const double weight = store_->get(t.id)->weight;
  reopen();
  EXPECT_EQ(store_->get(t.id)->weight, weight) << "memory and disk disagree after races";
  EXPECT_EQ(keys.size(), 40u);
  for (const auto& k : keys) EXPECT_EQ(store_->authenticate(k), t.id);
}

}  // namespace
}  // namespace quilt::tenants
