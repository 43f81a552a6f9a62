// Tests of TenantStore's key records: names, scopes, expiry, last use, listing, old records.
#include <gtest/gtest.h>

#include <chrono>

#include "tenants/tenant_store.h"
#include "tests/storage/temp_dir.h"

namespace quilt::tenants {
namespace {

using quilt::testing::TempDir;
using storage::Family;

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class KeyScopeTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
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
  std::string tenant(const std::string& name) {
    auto t = store_->create(name, 1.0, {});
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? t->id : "";
  }
  TempDir dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<TenantStore> store_;
};

TEST_F(KeyScopeTest, ScopeNamesRoundTrip) {
  EXPECT_EQ(scope_name(KeyScope::kInference), "inference");
  EXPECT_EQ(scope_name(KeyScope::kDeploy), "deploy");
  EXPECT_EQ(parse_scope("deploy"), KeyScope::kDeploy);
  EXPECT_EQ(parse_scope("inference"), KeyScope::kInference);
  EXPECT_EQ(parse_scope("admin"), std::nullopt);
  EXPECT_EQ(parse_scope("Deploy"), std::nullopt);
}

TEST_F(KeyScopeTest, OptionsAreStoredListedAndSurviveReopen) {
  const std::string t = tenant("acme");
  const int64_t before = now_s();
  auto ci = store_->create_key(t, KeyOptions{"ci-pipeline", KeyScope::kDeploy, 3600});
  ASSERT_TRUE(ci.ok()) << ci.status().message();
  auto plain = store_->create_key(t);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ci->info.name, "ci-pipeline");
  EXPECT_EQ(ci->info.scope, KeyScope::kDeploy);
  EXPECT_GE(ci->info.created, before);
  EXPECT_EQ(ci->info.expires_at, ci->info.created + 3600);
  EXPECT_EQ(ci->info.last_used, 0);
  EXPECT_EQ(plain->info.scope, KeyScope::kInference);
  EXPECT_EQ(plain->info.expires_at, 0);

  reopen();
  auto keys = store_->list_keys(t);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  const KeyInfo& a = (*keys)[0].key_id == ci->key_id ? (*keys)[0] : (*keys)[1];
  const KeyInfo& b = (*keys)[0].key_id == ci->key_id ? (*keys)[1] : (*keys)[0];
  EXPECT_EQ(a.key_id, ci->key_id);
  EXPECT_EQ(a.name, "ci-pipeline");
  EXPECT_EQ(a.scope, KeyScope::kDeploy);
  EXPECT_EQ(a.expires_at, ci->info.expires_at);
  EXPECT_EQ(b.key_id, plain->key_id);
  EXPECT_EQ(b.name, "");
  EXPECT_EQ(b.scope, KeyScope::kInference);
  // Deploy keys authenticate as their tenant too; what they may do is the gateway's decision.
  EXPECT_EQ(store_->authenticate(ci->key), t);
  EXPECT_EQ(store_->list_keys("t_0000000000000000").status().code(), StatusCode::kNotFound);
}

TEST_F(KeyScopeTest, BadOptionsAreRefusedAndWriteNothing) {
  const std::string t = tenant("acme");
  for (const KeyOptions& bad : {KeyOptions{std::string(129, 'x'), KeyScope::kInference, 0},
                                KeyOptions{"bad\x01name", KeyScope::kInference, 0},
                                KeyOptions{"", KeyScope::kInference, -5},
                                KeyOptions{"", KeyScope::kInference, kMaxKeyLifetimeSeconds + 1}}) {
    auto k = store_->create_key(t, bad);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument) << k.status().message();
  }
  EXPECT_TRUE(store_->list_keys(t)->empty());
  EXPECT_TRUE(db_->scan(Family::kKeys, "")->empty());
}

TEST_F(KeyScopeTest, ExpiredKeysFail) {
  const std::string t = tenant("acme");
  auto k = store_->create_key(t, KeyOptions{"", KeyScope::kInference, 100});
  ASSERT_TRUE(k.ok());
  const int64_t expires = k->info.expires_at;
  EXPECT_TRUE(store_->verify_key(k->key, expires - 1).ok());
  auto late = store_->verify_key(k->key, expires);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(late.status().message().find("expired"), std::string::npos) << late.status().message();
  auto unknown = store_->verify_key("qk_nope");
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.status().message(), "invalid API key");
}

TEST_F(KeyScopeTest, LastUseMovesOncePerMinuteAndPersistsOnFlush) {
  const std::string t = tenant("acme");
  auto k = store_->create_key(t);
  ASSERT_TRUE(k.ok());
  const int64_t t0 = 1'800'000'000;  // a minute boundary: 1.8e9 is a multiple of 60
  ASSERT_TRUE(store_->verify_key(k->key, t0 + 5).ok());
  EXPECT_EQ((*store_->list_keys(t))[0].last_used, t0);
  ASSERT_TRUE(store_->verify_key(k->key, t0 + 59).ok());
  EXPECT_EQ((*store_->list_keys(t))[0].last_used, t0) << "moved within the minute";
  // authenticate() is no use: the admin routes' 401/403 decision calls it.
  ASSERT_TRUE(store_->authenticate(k->key));
  ASSERT_TRUE(store_->flush_key_use().ok());
  ASSERT_TRUE(store_->verify_key(k->key, t0 + 61).ok());
  EXPECT_EQ((*store_->list_keys(t))[0].last_used, t0 + 60);
  reopen();
  EXPECT_EQ((*store_->list_keys(t))[0].last_used, t0) << "only flushed uses persist";
  ASSERT_TRUE(store_->verify_key(k->key, t0 + 125).ok());
  ASSERT_TRUE(store_->flush_key_use().ok());
  reopen();
  EXPECT_EQ((*store_->list_keys(t))[0].last_used, t0 + 120);
  EXPECT_EQ(store_->authenticate(k->key), t) << "the rewritten record still authenticates";
}

TEST_F(KeyScopeTest, FlushNeverResurrectsARevokedKey) {
  const std::string t = tenant("acme");
  auto k = store_->create_key(t);
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(store_->verify_key(k->key).ok());  // dirty
  ASSERT_TRUE(store_->revoke_key(t, k->key_id).ok());
  ASSERT_TRUE(store_->flush_key_use().ok());
  reopen();
  EXPECT_EQ(store_->authenticate(k->key), std::nullopt);
  EXPECT_TRUE(store_->list_keys(t)->empty());
}

TEST_F(KeyScopeTest, RecordsWithoutNameOrScopeLoadAsInferenceKeys) {
  const std::string t = tenant("acme");
  auto k = store_->create_key(t);
  ASSERT_TRUE(k.ok());
  // Rewrite the record the way releases before key scopes wrote it.
  auto records = db_->scan(Family::kKeys, "hash:");
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  const std::string old = R"({"key_id":")" + k->key_id + R"(","tenant_id":")" + t + R"(","created":1700000000})";
  ASSERT_TRUE(db_->put(Family::kKeys, (*records)[0].first, old, true).ok());
  reopen();
  auto keys = store_->list_keys(t);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].name, "");
  EXPECT_EQ((*keys)[0].scope, KeyScope::kInference);
  EXPECT_EQ((*keys)[0].created, 1700000000);
  EXPECT_EQ((*keys)[0].expires_at, 0);
  auto v = store_->verify_key(k->key);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->scope, KeyScope::kInference);

  // An unknown scope is a damaged record: the store refuses to open rather than guess.
  ASSERT_TRUE(db_->put(Family::kKeys, (*records)[0].first,
                       R"({"key_id":"k_1","tenant_id":")" + t + R"(","scope":"root"})", true)
                  .ok());
  store_.reset();
  EXPECT_FALSE(TenantStore::open(*db_).ok());
}

}  // namespace
}  // namespace quilt::tenants
