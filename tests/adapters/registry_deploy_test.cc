// Tests of the registry's deploy flow: idempotent pushes, version numbers never reused, who and
// what is recorded with a version, staged versions, canary splits, and data from before them.
#include "tests/adapters/fixture_model.h"
#include "adapters/registry.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "adapters/registry_store.h"
#include "common/files.h"
#include "tests/engine/safetensors_writer.h"

namespace quilt::adapters {
namespace {

using storage::Database;
using testing::kAdapters;
using testing::tiny_llama;

std::string config_of(const std::string& fixture) {
  return read_file(kAdapters / fixture / "adapter_config.json").value();
}
std::filesystem::path weights_of(const std::string& fixture) {
  return kAdapters / fixture / "adapter_model.safetensors";
}

class RegistryDeployTest : public ::testing::Test {
 protected:
  void SetUp() override { open_all(); }

  void open_all() {
    auto db = Database::open(dir_.path() / "db");
    ASSERT_TRUE(db.ok()) << db.status().message();
    db_ = std::move(*db);
    auto reg = AdapterRegistry::open(*db_, tiny_llama(), int64_t{1} << 30);
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    reg_ = std::move(*reg);
  }
  void reopen() {
    reg_.reset();
    db_.reset();
    open_all();
  }

  // A push of a fixture (its config plus `config_suffix`, to make distinct content cheaply).
  Result<DeployOutcome> push(const std::string& name, const std::string& fixture, DeployOptions options = {},
                             const std::string& config_suffix = "", const std::string& owner = "t1") {
    return reg_->deploy(name, owner, config_of(fixture) + config_suffix, weights_of(fixture), options);
  }
  DeployOutcome must_push(const std::string& name, const std::string& fixture, DeployOptions options = {},
                          const std::string& config_suffix = "") {
    auto out = push(name, fixture, std::move(options), config_suffix);
    EXPECT_TRUE(out.ok()) << out.status().message();
    return out.ok() ? *out : DeployOutcome{};
  }
  DeployOptions staged() {
    DeployOptions o;
    o.stage = true;
    return o;
  }
  std::vector<int64_t> versions(const std::string& name) {
    std::vector<int64_t> out;
    const AdapterInfo info = reg_->info(name).value();
    for (const auto& v : info.versions) out.push_back(v.version);
    return out;
  }
  int64_t resolved_version(const std::string& ref) {
    auto r = reg_->resolve(ref, "t1");
    EXPECT_TRUE(r.ok()) << ref << ": " << r.status().message();
    return r.ok() ? r->version : -1;
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<AdapterRegistry> reg_;
};

TEST_F(RegistryDeployTest, TheSameContentUnderTheSameNameIsTheSameVersion) {
  const DeployOutcome first = must_push("bot", "support-bot");
  EXPECT_TRUE(first.created);
  EXPECT_TRUE(first.live);
  EXPECT_EQ(first.version.version, 1);
  const std::string weights = read_file(weights_of("support-bot")).value();
  EXPECT_EQ(first.version.sha256, registry_store::sha256_hex(weights));
  EXPECT_EQ(first.version.sha256.size(), 64u);
  EXPECT_EQ(first.version.config_sha256, registry_store::sha256_hex(config_of("support-bot")));

  const DeployOutcome again = must_push("bot", "support-bot");
  EXPECT_FALSE(again.created);
  EXPECT_TRUE(again.live);
  EXPECT_EQ(again.version.version, 1);
  EXPECT_EQ(versions("bot"), (std::vector<int64_t>{1}));

  // A different config (even by a byte) or different weights is a new version.
  EXPECT_EQ(must_push("bot", "support-bot", {}, " ").version.version, 2);
  EXPECT_EQ(must_push("bot", "sql-writer").version.version, 3);
  // Re-pushing version 1's content answers version 1 and changes nothing: 3 stays live.
  const DeployOutcome old = must_push("bot", "support-bot");
  EXPECT_FALSE(old.created);
  EXPECT_FALSE(old.live);
  EXPECT_EQ(old.version.version, 1);
  EXPECT_EQ(reg_->info("bot")->live_version, 3);
  // The same content under another name is another adapter.
  EXPECT_EQ(must_push("bot2", "support-bot").version.version, 1);

  reopen();  // the hashes were persisted
  EXPECT_FALSE(must_push("bot", "sql-writer").created);
  EXPECT_EQ(versions("bot"), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(RegistryDeployTest, ConcurrentIdenticalPushesMakeOneVersion) {
  std::vector<std::thread> threads;
  std::vector<int> created(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto out = push("bot", "legal-rs");
      ASSERT_TRUE(out.ok()) << out.status().message();
      created[t] = out->created ? 1 : 0;
      EXPECT_EQ(out->version.version, 1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(created[0] + created[1] + created[2] + created[3], 1);
  EXPECT_EQ(versions("bot"), (std::vector<int64_t>{1}));
}

TEST_F(RegistryDeployTest, VersionNumbersAreNeverReusedAfterRemoveOrRestart) {
  must_push("bot", "support-bot");
  must_push("bot", "sql-writer");
  ASSERT_TRUE(reg_->remove("bot").ok());
  reopen();
  EXPECT_TRUE(reg_->info("bot").status().IsNotFound());
  EXPECT_EQ(must_push("bot", "legal-rs").version.version, 3);
  ASSERT_TRUE(reg_->remove("bot").ok());
  // Without a restart too; and content of a removed version is new again.
  EXPECT_EQ(must_push("bot", "support-bot").version.version, 4);
  EXPECT_EQ(resolved_version("bot"), 4);
  EXPECT_TRUE(reg_->resolve("bot@1", "t1").status().IsNotFound());
  reopen();
  EXPECT_EQ(versions("bot"), (std::vector<int64_t>{4}));
  EXPECT_EQ(must_push("bot", "wide-64").version.version, 5);
}

TEST_F(RegistryDeployTest, UploaderAndMetadataAreStoredWithEachVersion) {
  DeployOptions o;
  o.uploaded_by = "k_0123456789abcdef";
  o.metadata = R"({"training_run": "r-17", "base_model": "tiny-llama", "epochs": 3})";
  must_push("bot", "support-bot", o);
  must_push("bot", "sql-writer");  // defaults: the admin, no metadata
  reopen();
  const AdapterInfo info = reg_->info("bot").value();
  ASSERT_EQ(info.versions.size(), 2u);
  EXPECT_EQ(info.versions[0].uploaded_by, "k_0123456789abcdef");
  const auto meta = nlohmann::json::parse(info.versions[0].metadata);
  EXPECT_EQ(meta["training_run"], "r-17");
  EXPECT_EQ(meta["epochs"], 3);
  EXPECT_EQ(info.versions[1].uploaded_by, "admin");
  EXPECT_EQ(info.versions[1].metadata, "{}");
  EXPECT_GT(info.versions[1].created, 0);

  // Metadata that is not a JSON object, or too large, is refused and changes nothing.
  for (const std::string& bad : std::vector<std::string>{"[1, 2]", "\"text\"", "{nope", std::string(5000, ' ') + "{}",
                                "{\"k\": \"" + std::string(kMaxMetadataBytes, 'x') + "\"}"}) {
    DeployOptions b;
    b.metadata = bad;
    auto out = push("bot", "legal-rs", b);
    ASSERT_FALSE(out.ok()) << bad;
    EXPECT_TRUE(out.status().IsInvalidArgument());
    EXPECT_EQ(out.status().message().rfind("metadata:", 0), 0u) << out.status().message();
  }
  EXPECT_EQ(versions("bot"), (std::vector<int64_t>{1, 2}));
}

TEST_F(RegistryDeployTest, StagedVersionsAreStoredButTakeNoTrafficUntilActivated) {
  // A first version staged: nothing is live, only "bot@1" resolves.
  const DeployOutcome v1 = must_push("bot", "support-bot", staged());
  EXPECT_TRUE(v1.created);
  EXPECT_FALSE(v1.live);
  EXPECT_EQ(reg_->info("bot")->live_version, 0);
  EXPECT_TRUE(reg_->info("bot")->live().empty());
  EXPECT_TRUE(reg_->resolve("bot", "t1").status().IsNotFound());
  EXPECT_EQ(resolved_version("bot@1"), 1);
  EXPECT_TRUE(reg_->visible_to("t1").empty());
  EXPECT_EQ(reg_->list().size(), 1u);  // the admin sees it

  reopen();
  EXPECT_EQ(reg_->info("bot")->live_version, 0);
  ASSERT_TRUE(reg_->activate("bot", 1).ok());
  EXPECT_EQ(resolved_version("bot"), 1);
  EXPECT_EQ(reg_->visible_to("t1").size(), 1u);

  // A staged second version leaves the first live until it is activated.
  EXPECT_EQ(must_push("bot", "sql-writer", staged()).version.version, 2);
  EXPECT_EQ(resolved_version("bot"), 1);
  EXPECT_EQ(resolved_version("bot@2"), 2);
  ASSERT_TRUE(reg_->activate("bot", 2).ok());
  EXPECT_EQ(resolved_version("bot"), 2);
  ASSERT_TRUE(reg_->rollback("bot", 1).ok());
  EXPECT_EQ(resolved_version("bot"), 1);
  EXPECT_TRUE(reg_->activate("bot", 9).IsNotFound());
  EXPECT_TRUE(reg_->activate("nope", 1).IsNotFound());
  reopen();
  EXPECT_EQ(resolved_version("bot"), 1);
}

TEST_F(RegistryDeployTest, ACanarySplitSpreadsRequestsAndPersists) {
  must_push("bot", "support-bot");
  must_push("bot", "sql-writer", staged());
  ASSERT_TRUE(reg_->set_split("bot", {{1, 0.9}, {2, 0.1}}).ok());
  AdapterInfo info = reg_->info("bot").value();
  EXPECT_EQ(info.live_version, 1);  // the primary
  EXPECT_EQ(info.live(), (LiveSplit{{1, 0.9}, {2, 0.1}}));

  std::map<int64_t, int> count;
  for (int i = 0; i < 200; ++i) ++count[resolved_version("bot")];
  EXPECT_NEAR(count[1], 180, 3);
  EXPECT_NEAR(count[2], 20, 3);
  EXPECT_EQ(resolved_version("bot@2"), 2);  // a pinned version ignores the split

  // Refused splits change nothing.
  EXPECT_TRUE(reg_->set_split("bot", {{1, 0.5}, {2, 0.4}}).IsInvalidArgument());
  EXPECT_TRUE(reg_->set_split("bot", {{1, 0.5}, {7, 0.5}}).IsNotFound());
  EXPECT_TRUE(reg_->set_split("nope", {{1, 1.0}}).IsNotFound());
  EXPECT_EQ(reg_->info("bot")->live(), (LiveSplit{{1, 0.9}, {2, 0.1}}));

  reopen();
  info = reg_->info("bot").value();
  EXPECT_EQ(info.live(), (LiveSplit{{1, 0.9}, {2, 0.1}}));
  count.clear();
  for (int i = 0; i < 100; ++i) ++count[resolved_version("bot")];
  EXPECT_NEAR(count[2], 10, 3);

  // The canary wins: a split of one version, or activate, ends the split.
  ASSERT_TRUE(reg_->set_split("bot", {{2, 1.0}}).ok());
  EXPECT_TRUE(reg_->info("bot")->split.empty());
  EXPECT_EQ(reg_->info("bot")->live_version, 2);
  ASSERT_TRUE(reg_->set_split("bot", {{1, 0.5}, {2, 0.5}}).ok());
  EXPECT_EQ(reg_->info("bot")->live_version, 1);  // a tie: the lower version
  // A staged push keeps the split; a live push replaces it.
  must_push("bot", "legal-rs", staged());
  EXPECT_EQ(reg_->info("bot")->live(), (LiveSplit{{1, 0.5}, {2, 0.5}}));
  must_push("bot", "wide-64");
  EXPECT_EQ(reg_->info("bot")->live(), (LiveSplit{{4, 1.0}}));
}

// A deploy key's changes name its tenant: another tenant's adapter is NotFound, like a missing one.
TEST_F(RegistryDeployTest, ChangesForAnOwnerLeaveOtherTenantsAdaptersAlone) {
  must_push("bot", "support-bot");
  must_push("bot", "sql-writer", staged());
  const std::optional<std::string> other = "t2", own = "t1";
  const std::string missing = reg_->activate("nope", 1).message();
  const Status refused = reg_->activate("bot", 2, other);
  EXPECT_TRUE(refused.IsNotFound());
  EXPECT_EQ(refused.message(), "adapter 'bot' not found");
  EXPECT_EQ(missing, "adapter 'nope' not found");
  EXPECT_TRUE(reg_->rollback("bot", 2, other).IsNotFound());
  EXPECT_TRUE(reg_->set_split("bot", {{1, 0.5}, {2, 0.5}}, other).IsNotFound());
  EXPECT_TRUE(reg_->evict("bot", other).IsNotFound());
  EXPECT_TRUE(reg_->remove("bot", other).IsNotFound());
  EXPECT_EQ(reg_->info("bot")->live_version, 1);
  EXPECT_TRUE(reg_->info("bot")->host_resident);

  EXPECT_TRUE(reg_->set_split("bot", {{1, 0.5}, {2, 0.5}}, own).ok());
  EXPECT_TRUE(reg_->activate("bot", 2, own).ok());
  EXPECT_TRUE(reg_->evict("bot", own).ok());
  EXPECT_TRUE(reg_->remove("bot", own).ok());
  EXPECT_TRUE(reg_->info("bot").status().IsNotFound());
}

// A data directory written before hashes, uploaders, staging and high-water marks existed still
// opens; its versions show no hash and the next version follows the last stored one.
TEST_F(RegistryDeployTest, RecordsFromBeforeTheDeployFlowStillOpen) {
  reg_.reset();
  const std::string config = config_of("support-bot");
  const std::string blob = read_file(weights_of("support-bot")).value();
  nlohmann::json legacy = {
      {"name", "old"}, {"owner", "t1"}, {"shared", false}, {"live_version", 2},
      {"versions",
       {{{"version", 1}, {"rank", 8}, {"target_modules", {"q_proj", "v_proj"}}, {"bytes", blob.size()}, {"created", 1}},
        {{"version", 2}, {"rank", 8}, {"target_modules", {"q_proj", "v_proj"}}, {"bytes", blob.size()}, {"created", 2}}}}};
  storage::WriteBatch batch;
  batch.put(storage::Family::kAdapters, registry_store::meta_key("old"), legacy.dump());
  registry_store::put_version(batch, "old", 1, config, blob);
  registry_store::put_version(batch, "old", 2, config, blob);
  ASSERT_TRUE(db_->write(batch, true).ok());
  reg_ = AdapterRegistry::open(*db_, tiny_llama(), int64_t{1} << 30).value();

  const AdapterInfo info = reg_->info("old").value();
  EXPECT_EQ(info.live_version, 2);
  EXPECT_TRUE(info.split.empty());
  EXPECT_EQ(info.versions[0].sha256, "");
  EXPECT_EQ(info.versions[0].metadata, "{}");
  EXPECT_EQ(resolved_version("old"), 2);
  // Unhashed versions never match, so the same content is stored again, as version 3.
  const DeployOutcome next = must_push("old", "support-bot");
  EXPECT_TRUE(next.created);
  EXPECT_EQ(next.version.version, 3);
}

}  // namespace
}  // namespace quilt::adapters
