// Tests of the adapter registry: hot deploys, versions, visibility, persistence, the host cache.
#include "tests/adapters/fixture_model.h"
#include "adapters/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "adapters/peft_adapter.h"
#include "common/files.h"
#include "tests/engine/safetensors_writer.h"

namespace quilt::adapters {
namespace {

using engine::LoraWeights;
using engine::ModelConfig;
using storage::Database;
using storage::Family;
using testing::TestTensor;

using testing::kAdapters;
using testing::kSource;
using testing::tiny_llama;
constexpr int64_t kBigCache = int64_t{1} << 30;

std::string config_of(const std::string& fixture) {
  auto text = read_file(kAdapters / fixture / "adapter_config.json");
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? *text : "";
}

std::filesystem::path weights_of(const std::string& fixture) {
  return kAdapters / fixture / "adapter_model.safetensors";
}

std::shared_ptr<const LoraWeights> fixture_weights(const std::string& fixture) {
  auto w = load_peft_adapter_dir(kAdapters / fixture, tiny_llama());
  EXPECT_TRUE(w.ok()) << w.status().message();
  return w.ok() ? *w : nullptr;
}

// Same modules, ranks, scales and values (names may differ: the registry names by adapter).
void expect_same(const LoraWeights& a, const LoraWeights& b) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    for (int p = 0; p < engine::kNumProjections; ++p) {
      const auto& x = a.layers[l][p];
      const auto& y = b.layers[l][p];
      EXPECT_EQ(x.rank, y.rank) << "layer " << l << " proj " << p;
      EXPECT_EQ(x.scale, y.scale) << "layer " << l << " proj " << p;
      EXPECT_EQ(x.a, y.a) << "layer " << l << " proj " << p;
      EXPECT_EQ(x.bt, y.bt) << "layer " << l << " proj " << p;
    }
  }
}

std::vector<int64_t> version_numbers(const AdapterInfo& info) {
  std::vector<int64_t> out;
  for (const auto& v : info.versions) out.push_back(v.version);
  return out;
}

std::vector<std::string> names(const std::vector<AdapterInfo>& infos) {
  std::vector<std::string> out;
  for (const auto& i : infos) out.push_back(i.name);
  return out;
}

// An all-linear adapter of rank `r` in F32: at r >= 512 its file spans several 4 MiB chunks.
struct BigAdapter {
  std::string config;
  std::filesystem::path weights;
};
BigAdapter make_big_adapter(const testing::ScratchDir& dir, int64_t r) {
  const ModelConfig& m = tiny_llama();
  std::vector<TestTensor> tensors;
  for (int64_t l = 0; l < m.num_layers; ++l) {
    for (int p = 0; p < engine::kNumProjections; ++p) {
      const auto proj = static_cast<engine::Projection>(p);
      const int64_t in = engine::projection_in_dim(m, proj);
      const int64_t out = engine::projection_out_dim(m, proj);
      const std::string base = "base_model.model." + peft_module_name(l, proj);
      tensors.push_back({base + ".lora_A.weight",
                         "F32",
                         {r, in},
                         testing::ramp(static_cast<size_t>(r * in), -0.5f, 1.0f / 256)});
      tensors.push_back({base + ".lora_B.weight",
                         "F32",
                         {out, r},
                         testing::ramp(static_cast<size_t>(out * r), 0.25f, -1.0f / 512)});
    }
  }
  nlohmann::json cfg = {
      {"peft_type", "LORA"},
      {"r", r},
      {"lora_alpha", r},
      {"target_modules",
       {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}};
  const std::string file = "big-" + std::to_string(r) + ".safetensors";
  return {cfg.dump(), dir.write(file, testing::make_safetensors(tensors))};
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { open_all(kBigCache); }

  void open_all(int64_t cache_bytes) {
    auto db = Database::open(dir_.path() / "db");
    ASSERT_TRUE(db.ok()) << db.status().message();
    db_ = std::move(*db);
    auto reg = AdapterRegistry::open(*db_, tiny_llama(), cache_bytes);
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    reg_ = std::move(*reg);
  }
  void reopen(int64_t cache_bytes = kBigCache) {
    reg_.reset();
    db_.reset();  // RocksDB's LOCK is held until the database closes
    open_all(cache_bytes);
  }

  AdapterVersion deploy(const std::string& name, const std::string& owner,
                        const std::string& fixture, bool shared = false) {
    auto v = reg_->deploy(name, owner, shared, config_of(fixture), weights_of(fixture));
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? *v : AdapterVersion{};
  }

  // Keys of Family::kAdapterBlobs under `prefix`.
  size_t blob_keys(const std::string& prefix) {
    auto rows = db_->scan(Family::kAdapterBlobs, prefix);
    EXPECT_TRUE(rows.ok()) << rows.status().message();
    return rows.ok() ? rows->size() : 0;
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<AdapterRegistry> reg_;
};

TEST_F(RegistryTest, NewVersionsGoLiveWhilePinnedVersionsKeepTheirWeights) {
  const AdapterVersion v1 = deploy("bot", "t1", "support-bot");
  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(v1.rank, 8);
  EXPECT_EQ(v1.bytes, static_cast<int64_t>(std::filesystem::file_size(weights_of("support-bot"))));
  EXPECT_EQ(v1.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  const AdapterVersion v2 = deploy("bot", "t1", "legal-rs");
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v2.rank, 4);
  EXPECT_EQ(v2.target_modules, (std::vector<std::string>{"down_proj", "gate_proj", "k_proj",
                                                         "o_proj", "q_proj", "up_proj", "v_proj"}));

  auto info = reg_->info("bot");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->owner, "t1");
  EXPECT_EQ(info->live_version, 2);
  EXPECT_EQ(version_numbers(*info), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(info->host_resident);

  auto live = reg_->resolve("bot", "t1");
  ASSERT_TRUE(live.ok()) << live.status().message();
  EXPECT_EQ(live->name, "bot");
  EXPECT_EQ(live->version, 2);
  expect_same(*live->weights, *fixture_weights("legal-rs"));
  auto pinned = reg_->resolve("bot@1", "t1");
  ASSERT_TRUE(pinned.ok()) << pinned.status().message();
  EXPECT_EQ(pinned->version, 1);
  expect_same(*pinned->weights, *fixture_weights("support-bot"));

  ASSERT_TRUE(reg_->rollback("bot", 1).ok());
  live = reg_->resolve("bot", "t1");
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->version, 1);
  EXPECT_EQ(live->weights, pinned->weights);  // the cached copy, not a reload
  EXPECT_TRUE(reg_->rollback("bot", 3).IsNotFound());
  EXPECT_TRUE(reg_->rollback("nope", 1).IsNotFound());

  reopen();  // the rollback was persisted
  info = reg_->info("bot");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->live_version, 1);
  // A version deployed after a rollback goes live again.
  EXPECT_EQ(deploy("bot", "t1", "sql-writer").version, 3);
  EXPECT_EQ(reg_->info("bot")->live_version, 3);
}

TEST_F(RegistryTest, ForeignAndMissingAdaptersGiveTheSameNotFound) {
  deploy("private", "t1", "support-bot");
  for (const std::string ref : {"private", "private@1"}) {
    auto foreign = reg_->resolve(ref, "t2");
    ASSERT_FALSE(foreign.ok());
    EXPECT_TRUE(foreign.status().IsNotFound());
    EXPECT_EQ(foreign.status().message(), "adapter '" + ref + "' not found");
  }
  for (const std::string ref : {"missing", "private@2", "private@0", "private@-1", "private@x",
                                "private@", "@1", "private@1@1", "private@99999999999999999999"}) {
    auto r = reg_->resolve(ref, "t1");
    ASSERT_FALSE(r.ok()) << ref;
    EXPECT_TRUE(r.status().IsNotFound()) << ref;
    EXPECT_EQ(r.status().message(), "adapter '" + ref + "' not found");
  }
  EXPECT_TRUE(reg_->resolve("private", "t1").ok());
  EXPECT_TRUE(reg_->visible_to("t2").empty());
}

TEST_F(RegistryTest, SharedAdaptersAreVisibleToEveryTenant) {
  deploy("pub", "t1", "support-bot", /*shared=*/true);
  deploy("mine", "t2", "legal-rs");
  deploy("other", "t3", "legal-rs");
  EXPECT_EQ(names(reg_->visible_to("t2")), (std::vector<std::string>{"mine", "pub"}));
  EXPECT_EQ(names(reg_->visible_to("t9")), (std::vector<std::string>{"pub"}));
  EXPECT_EQ(names(reg_->list()), (std::vector<std::string>{"mine", "other", "pub"}));
  auto r = reg_->resolve("pub@1", "t9");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(reg_->info("pub")->shared);
}

TEST_F(RegistryTest, BadNamesAndForeignOwnersAreInvalidArgument) {
  EXPECT_TRUE(AdapterRegistry::valid_name("a.b_c-D9"));
  EXPECT_TRUE(AdapterRegistry::valid_name(std::string(64, 'x')));
  for (const std::string& bad : {std::string(), std::string(65, 'x'), std::string("a b"),
                                 std::string("a/b"), std::string("a@1"), std::string("caf\xc3\xa9"),
                                 std::string("."), std::string(".."),
                                 std::string("a\x1f"
                                             "b")}) {
    EXPECT_FALSE(AdapterRegistry::valid_name(bad)) << bad;
    auto r = reg_->deploy(bad, "t1", false, config_of("support-bot"), weights_of("support-bot"));
    EXPECT_TRUE(r.status().IsInvalidArgument()) << bad;
  }
  auto no_owner =
      reg_->deploy("bot", "", false, config_of("support-bot"), weights_of("support-bot"));
  EXPECT_TRUE(no_owner.status().IsInvalidArgument());

  deploy("bot", "t1", "support-bot");
  auto foreign = reg_->deploy("bot", "t2", true, config_of("legal-rs"), weights_of("legal-rs"));
  ASSERT_FALSE(foreign.ok());
  EXPECT_TRUE(foreign.status().IsInvalidArgument());
  EXPECT_EQ(foreign.status().message(), "adapter bot belongs to another tenant");
  auto info = reg_->info("bot");
  EXPECT_EQ(info->owner, "t1");
  EXPECT_FALSE(info->shared);
  EXPECT_EQ(version_numbers(*info), (std::vector<int64_t>{1}));
  EXPECT_EQ(names(reg_->list()), (std::vector<std::string>{"bot"}));
}

TEST_F(RegistryTest, UploadsThatDoNotFitAreUnprocessableAndPersistNothing) {
  deploy("bot", "t1", "support-bot");

  // A target module the base model lacks.
  nlohmann::json cfg = nlohmann::json::parse(config_of("support-bot"));
  cfg["target_modules"] = {"q_proj", "w_proj"};
  auto r = reg_->deploy("bad", "t1", false, cfg.dump(), weights_of("support-bot"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsUnprocessable()) << r.status().message();
  EXPECT_NE(r.status().message().find("w_proj"), std::string::npos) << r.status().message();

  // The fixture's tensors with one lora_A of the wrong shape.
  auto store = engine::TensorStore::open_file(weights_of("support-bot"));
  ASSERT_TRUE(store.ok());
  std::vector<TestTensor> tensors;
  const std::string wrong = "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight";
  for (const auto& [name, view] : (*store)->tensors()) {
    TestTensor t{name, "F32", view.shape, engine::to_float32(view)};
    if (name == wrong) {
      t.shape = {8, 32};
      t.data.resize(8 * 32);
    }
    tensors.push_back(std::move(t));
  }
  ASSERT_EQ(tensors.size(), 8u);  // support-bot: q_proj and v_proj of 2 layers
  const auto bad_shape = dir_.write("bad_shape.safetensors", testing::make_safetensors(tensors));
  for (const std::string name : {"bad", "bot"}) {
    r = reg_->deploy(name, "t1", false, config_of("support-bot"), bad_shape);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsUnprocessable()) << r.status().message();
    EXPECT_NE(r.status().message().find(wrong), std::string::npos) << r.status().message();
  }

  // Not a safetensors file at all.
  const auto garbage = dir_.write("garbage.safetensors", "this is not safetensors");
  r = reg_->deploy("bad", "t1", false, config_of("support-bot"), garbage);
  EXPECT_TRUE(r.status().IsUnprocessable()) << r.status().message();

  auto check = [&] {
    EXPECT_TRUE(reg_->info("bad").status().IsNotFound());
    EXPECT_EQ(version_numbers(*reg_->info("bot")), (std::vector<int64_t>{1}));
    EXPECT_EQ(names(reg_->list()), (std::vector<std::string>{"bot"}));
    EXPECT_EQ(blob_keys("b:bad"), 0u);
    EXPECT_EQ(blob_keys("c:bad"), 0u);
    EXPECT_EQ(blob_keys("b:bot\x1f"), 1u);  // v1's one chunk
    EXPECT_EQ(blob_keys("c:bot\x1f"), 1u);
  };
  check();
  reopen();
  check();
  // The failed deploys did not take a version number from the stored history.
  EXPECT_EQ(deploy("bot", "t1", "legal-rs").version, 2);
}

TEST_F(RegistryTest, ReopenKeepsMetadataAndLoadsWeightsFromStorage) {
  deploy("a", "t1", "support-bot");
  deploy("a", "t1", "sql-writer");
  deploy("w", "t2", "wide-64", /*shared=*/true);
  const BigAdapter big = make_big_adapter(dir_, 512);
  auto bv = reg_->deploy("big", "t1", false, big.config, big.weights);
  ASSERT_TRUE(bv.ok()) << bv.status().message();
  const int64_t chunks = (bv->bytes + (int64_t{4} << 20) - 1) / (int64_t{4} << 20);
  EXPECT_GE(chunks, 2);
  EXPECT_EQ(blob_keys("b:big\x1f"), static_cast<size_t>(chunks));
  auto big_fresh = reg_->resolve("big", "t1");
  ASSERT_TRUE(big_fresh.ok());
  const std::vector<AdapterInfo> before = reg_->list();

  reopen();
  const std::vector<AdapterInfo> after = reg_->list();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].name, before[i].name);
    EXPECT_EQ(after[i].owner, before[i].owner);
    EXPECT_EQ(after[i].shared, before[i].shared);
    EXPECT_EQ(after[i].live_version, before[i].live_version);
    EXPECT_FALSE(after[i].host_resident);  // open() reads metadata only
    ASSERT_EQ(after[i].versions.size(), before[i].versions.size());
    for (size_t v = 0; v < after[i].versions.size(); ++v) {
      const auto& x = after[i].versions[v];
      const auto& y = before[i].versions[v];
      EXPECT_EQ(x.version, y.version);
      EXPECT_EQ(x.rank, y.rank);
      EXPECT_EQ(x.target_modules, y.target_modules);
      EXPECT_EQ(x.bytes, y.bytes);
      EXPECT_EQ(x.created, y.created);
    }
  }

  auto a1 = reg_->resolve("a@1", "t1");
  auto a2 = reg_->resolve("a", "t1");
  auto w = reg_->resolve("w", "t7");
  auto big_stored = reg_->resolve("big", "t1");
  ASSERT_TRUE(a1.ok() && a2.ok() && w.ok() && big_stored.ok());
  EXPECT_EQ(a2->version, 2);
  expect_same(*a1->weights, *fixture_weights("support-bot"));
  expect_same(*a2->weights, *fixture_weights("sql-writer"));
  expect_same(*w->weights, *fixture_weights("wide-64"));
  expect_same(*big_stored->weights, *big_fresh->weights);
  EXPECT_TRUE(reg_->info("a")->host_resident);
}

TEST_F(RegistryTest, EvictDropsTheHostCopyAndResolveReloadsIt) {
  deploy("bot", "t1", "sql-writer");
  deploy("bot", "t1", "support-bot");
  auto first = reg_->resolve("bot", "t1");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(reg_->info("bot")->host_resident);

  ASSERT_TRUE(reg_->evict("bot").ok());
  EXPECT_FALSE(reg_->info("bot")->host_resident);
  auto again = reg_->resolve("bot", "t1");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->weights, first->weights);  // read back from storage
  expect_same(*again->weights, *first->weights);
  EXPECT_TRUE(reg_->info("bot")->host_resident);
  auto same = reg_->resolve("bot", "t1");
  EXPECT_EQ(same->weights, again->weights);  // and cached from then on
  EXPECT_TRUE(reg_->evict("nope").IsNotFound());
}

TEST_F(RegistryTest, ConcurrentColdResolvesShareOneLoad) {
  const BigAdapter big = make_big_adapter(dir_, 512);
  ASSERT_TRUE(reg_->deploy("big", "t1", false, big.config, big.weights).ok());
  ASSERT_TRUE(reg_->evict("big").ok());
  constexpr int kThreads = 4;
  std::vector<std::shared_ptr<const LoraWeights>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = reg_->resolve("big", "t1");
      EXPECT_TRUE(r.ok()) << r.status().message();
      if (r.ok()) got[t] = r->weights;
    });
  }
  for (auto& th : threads) th.join();
  // Whether a thread joined the load in flight or came after it, it got the one loaded copy.
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(got[t], got[0]);
  EXPECT_TRUE(reg_->info("big")->host_resident);
}

TEST_F(RegistryTest, HostCacheIsAnLruBoundedByBytes) {
  const auto bytes = [](const std::string& fixture) {
    return fixture_weights(fixture)->num_parameters() * 4;
  };
  reopen(bytes("support-bot") + bytes("sql-writer"));
  deploy("a", "t1", "support-bot");
  deploy("b", "t1", "sql-writer");
  EXPECT_TRUE(reg_->info("a")->host_resident);
  EXPECT_TRUE(reg_->info("b")->host_resident);
  ASSERT_TRUE(reg_->resolve("a", "t1").ok());  // `b` is now the least recently used
  deploy("c", "t1", "legal-rs");
  EXPECT_TRUE(reg_->info("a")->host_resident);
  EXPECT_FALSE(reg_->info("b")->host_resident);
  EXPECT_TRUE(reg_->info("c")->host_resident);

  // Larger than the whole budget: served, never cached.
  reopen(bytes("support-bot") - 1);
  auto r = reg_->resolve("a", "t1");
  ASSERT_TRUE(r.ok());
  expect_same(*r->weights, *fixture_weights("support-bot"));
  EXPECT_FALSE(reg_->info("a")->host_resident);
}

TEST_F(RegistryTest, RemoveForgetsEveryVersionWhileHeldWeightsStayUsable) {
  deploy("bot", "t1", "support-bot");
  deploy("bot", "t1", "sql-writer");
  deploy("keep", "t1", "legal-rs");
  auto held = reg_->resolve("bot", "t1");
  ASSERT_TRUE(held.ok());

  ASSERT_TRUE(reg_->remove("bot").ok());
  EXPECT_TRUE(reg_->resolve("bot", "t1").status().IsNotFound());
  EXPECT_TRUE(reg_->resolve("bot@1", "t1").status().IsNotFound());
  EXPECT_TRUE(reg_->info("bot").status().IsNotFound());
  EXPECT_TRUE(reg_->remove("bot").IsNotFound());
  EXPECT_TRUE(reg_->evict("bot").IsNotFound());
  EXPECT_EQ(names(reg_->list()), (std::vector<std::string>{"keep"}));
  expect_same(*held->weights, *fixture_weights("sql-writer"));  // the request runs on
  EXPECT_EQ(blob_keys("b:bot\x1f"), 0u);
  EXPECT_EQ(blob_keys("c:bot\x1f"), 0u);
  EXPECT_EQ(blob_keys("b:keep\x1f"), 1u);

  reopen();
  EXPECT_TRUE(reg_->info("bot").status().IsNotFound());
  EXPECT_TRUE(reg_->resolve("keep", "t1").ok());
  // The name is free again, for anyone, but its version numbers are never reused.
  EXPECT_EQ(deploy("bot", "t2", "legal-rs").version, 3);
  auto fresh = reg_->resolve("bot", "t2");
  ASSERT_TRUE(fresh.ok());
  expect_same(*fresh->weights, *fixture_weights("legal-rs"));
}

TEST_F(RegistryTest, ConcurrentDeploysGetDistinctVersions) {
  constexpr int kThreads = 4;
  constexpr int kEach = 3;
  const char* fixtures[] = {"support-bot", "sql-writer", "legal-rs", "wide-64"};
  std::vector<std::vector<int64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Trailing spaces make each config distinct content, so that no push is a repeat.
        auto v = reg_->deploy("bot", "t1", false, config_of(fixtures[t]) + std::string(i, ' '),
                              weights_of(fixtures[t]));
        if (v.ok()) got[t].push_back(v->version);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int64_t> all;
  for (const auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(kThreads * kEach);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int64_t>(i) + 1;
  EXPECT_EQ(all, expected);
  EXPECT_EQ(version_numbers(*reg_->info("bot")), expected);
  EXPECT_EQ(reg_->info("bot")->live_version, kThreads * kEach);
  reopen();
  EXPECT_EQ(version_numbers(*reg_->info("bot")), expected);

  // Two tenants racing for a new name: one owns it, the other is refused every time.
  std::atomic<int> refused{0};
  std::vector<std::string> owners(2);
  threads.clear();
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto v = reg_->deploy("contested", "t" + std::to_string(t), false,
                              config_of("legal-rs") + std::string(i, ' '), weights_of("legal-rs"));
        if (!v.ok()) {
          EXPECT_TRUE(v.status().IsInvalidArgument()) << v.status().message();
          ++refused;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(refused.load(), kEach);
  EXPECT_EQ(reg_->info("contested")->versions.size(), static_cast<size_t>(kEach));
}

TEST_F(RegistryTest, ResolveIsNotBlockedByADeploy) {
  deploy("small", "t1", "support-bot");
  const BigAdapter big = make_big_adapter(dir_, 2048);  // ~19 MB: a slow parse and write
  std::atomic<bool> done{false};
  std::chrono::steady_clock::duration deploy_time{};
  std::thread uploader([&] {
    const auto start = std::chrono::steady_clock::now();
    auto v = reg_->deploy("big", "t1", false, big.config, big.weights);
    deploy_time = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(v.ok()) << v.status().message();
    done = true;
  });
  std::chrono::steady_clock::duration worst{};
  int resolves = 0;
  while (!done) {
    const auto start = std::chrono::steady_clock::now();
    auto r = reg_->resolve("small", "t1");
    worst = std::max(worst, std::chrono::steady_clock::now() - start);
    ASSERT_TRUE(r.ok());
    ++resolves;
  }
  uploader.join();
  // A resolve stuck behind the upload would wait for all of it: one or two would finish while it
  // runs. (No bound on the slowest resolve: on a loaded machine any call can lose its core.)
  EXPECT_GT(resolves, 10)
      << "worst resolve " << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count()
      << " ms; deploy took "
      << std::chrono::duration_cast<std::chrono::milliseconds>(deploy_time).count() << " ms";
  EXPECT_EQ(reg_->info("big")->live_version, 1);
}

}  // namespace
}  // namespace quilt::adapters

namespace quilt::adapters {
namespace {

// Issue 9, item 3: a cold adapter is read from RocksDB and converted on a registry loader thread,
// never on the thread that asked (the gateway's I/O thread); a hot one is answered at once.
TEST_F(RegistryTest, ColdAdaptersLoadOnALoaderThreadNeverOnTheCaller) {
  deploy("bot", "t1", "sql-writer");
  ASSERT_TRUE(reg_->evict("bot").ok());
  std::mutex mu;
  std::vector<std::thread::id> readers;
  std::vector<bool> on_loader;
  reg_->set_storage_read_hook([&] {
    std::lock_guard lock(mu);
    readers.push_back(std::this_thread::get_id());
    on_loader.push_back(reg_->on_loader_thread());
  });

  const std::thread::id caller = std::this_thread::get_id();
  std::promise<std::pair<Result<ResolvedAdapter>, std::thread::id>> answered;
  reg_->resolve_async("bot", "t1", [&](Result<ResolvedAdapter> r) {
    answered.set_value({std::move(r), std::this_thread::get_id()});
  });
  auto [cold, cold_thread] = answered.get_future().get();
  ASSERT_TRUE(cold.ok()) << cold.status().message();
  ASSERT_NE(cold->weights, nullptr);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(readers.size(), 1u);  // one storage read, on a loader thread
    EXPECT_NE(readers[0], caller);
    EXPECT_TRUE(on_loader[0]);
  }
  EXPECT_NE(cold_thread, caller);  // the request goes on from the loader thread

  // Hot now: answered on the caller's thread, with no storage read.
  std::optional<std::thread::id> hot_thread;
  // `&cold = cold`: clang before 16 cannot capture a structured binding implicitly.
  reg_->resolve_async("bot", "t1", [&, &cold = cold](Result<ResolvedAdapter> r) {
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->weights, cold->weights);
    hot_thread = std::this_thread::get_id();
  });
  ASSERT_TRUE(hot_thread.has_value());
  EXPECT_EQ(*hot_thread, caller);
  // A missing name never reaches storage either.
  bool missing = false;
  reg_->resolve_async("nope", "t1", [&](Result<ResolvedAdapter> r) {
    missing = r.status().IsNotFound();
  });
  EXPECT_TRUE(missing);
  std::lock_guard lock(mu);
  EXPECT_EQ(readers.size(), 1u);
}

TEST_F(RegistryTest, DrainFinishesLoadsInFlightAndRefusesNewColdOnes) {
  deploy("bot", "t1", "sql-writer");
  deploy("helper", "t1", "support-bot");
  ASSERT_TRUE(reg_->evict("bot").ok());
  ASSERT_TRUE(reg_->evict("helper").ok());
  std::atomic<bool> answered{false};
  reg_->resolve_async("bot", "t1", [&](Result<ResolvedAdapter> r) {
    EXPECT_TRUE(r.ok()) << r.status().message();
    answered = true;
  });
  reg_->drain();
  EXPECT_TRUE(answered);  // drain() returned only after the callback ran
  Status refused;
  reg_->resolve_async("helper", "t1", [&](Result<ResolvedAdapter> r) { refused = r.status(); });
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(reg_->resolve("bot", "t1").ok());  // hot: still answered
}

}  // namespace
}  // namespace quilt::adapters
