// Conformance against Hugging Face, one suite over every architecture's reference fixture
// (tests/data/models/README.md; "llama" is tests/data/expected.json): all cases of a fixture
// submitted at once to one engine, so base-model and adapter requests share every batch; greedy
// ids exact and first-step logits within 1e-4 relative error, with roomy memory and with a tight
// configuration that forces chunked prefill, preemption and adapter eviction.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using testing::Collector;
using testing::ReferenceFixture;

// Every fixture this suite runs; each is committed (a missing one fails, it is not skipped).
const std::vector<std::string> kFixtures = {"llama",   "qwen2",        "qwen2.5-untied", "qwen3",
                                            "mistral", "mistral-nemo", "gemma2",         "gemma3",
                                            "phi3",    "phi3-longrope"};

enum class Memory { kRoomy, kTight };

EngineOptions options(Memory memory, const ModelConfig& cfg) {
  EngineOptions o;
  if (memory == Memory::kRoomy) return o;
  // Small steps force chunked prefill; a cache of 60 blocks of 8 tokens (480 tokens) is less than
  // the long cases (~325 tokens each) need together, forcing preemption by recompute; a pool with
  // room for two adapters forces adapter eviction and reload. Results must not change.
  o.max_step_tokens = 48;
  o.block_size = 8;
  const int64_t block_bytes = cfg.num_layers * 2 * o.block_size * cfg.kv_dim() * 4;  // float32
  o.kv_cache_bytes = 60 * block_bytes;
  o.max_adapter_slots = 2;
  return o;
}

class ConformanceTest : public ::testing::TestWithParam<std::tuple<std::string, Memory>> {
 protected:
  void SetUp() override {
    fixture_ = testing::reference_fixture(std::get<0>(GetParam()));
    expected_ = testing::load_json(fixture_.expected);
    auto cfg = load_model_config(fixture_.model_dir);
    ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
    auto e = Engine::create(fixture_.model_dir, options(std::get<1>(GetParam()), *cfg));
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::move(e).value();
    auto a = testing::load_adapters(fixture_, expected_, engine_->config());
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    adapters_ = std::move(a).value();
  }

  ReferenceFixture fixture_;
  std::unique_ptr<Engine> engine_;
  nlohmann::json expected_;
  std::map<std::string, std::shared_ptr<const LoraWeights>> adapters_;
};

TEST_P(ConformanceTest, EveryCaseMatchesTransformersInOneMixedBatch) {
  Collector collector;
  const auto& cases = expected_["cases"];
  ASSERT_GT(cases.size(), 0u);
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(
        engine_->submit(testing::reference_request(cases[i], i, adapters_, collector)).ok());
  }
  ASSERT_TRUE(collector.wait(cases.size(), std::chrono::seconds(300)));
  size_t passed = 0;
  double worst = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const testing::Outcome o = collector.get(i);
    const std::string label =
        fixture_.name + " case " + std::to_string(i) + " adapter " + c["adapter"].dump();
    const bool ids_equal = o.tokens == c["greedy_ids"].get<std::vector<int32_t>>();
    EXPECT_TRUE(ids_equal) << label;
    ASSERT_EQ(o.first_logits.size(), c["first_logits"].size()) << label;
    const double err =
        testing::relative_error(o.first_logits, c["first_logits"].get<std::vector<double>>());
    EXPECT_LT(err, 1e-4) << label;
    EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength) << label;
    if (ids_equal && err < 1e-4) ++passed;
    worst = std::max(worst, err);
  }
  RecordProperty("cases_passed", std::to_string(passed) + "/" + std::to_string(cases.size()));
  std::printf("[ numbers  ] %s: %zu/%zu cases exact, worst first-step logits error %.2g\n",
              fixture_.name.c_str(), passed, cases.size(), worst);
  EXPECT_GT(engine_->stats().steps, 0u);
  if (std::get<1>(GetParam()) == Memory::kTight) {
    // The tight configuration must really have exercised the paths it is there for.
    EXPECT_GT(engine_->stats().preemptions, 0u);
    EXPECT_GT(engine_->stats().adapter_evictions, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ConformanceTest,
                         ::testing::Combine(::testing::ValuesIn(kFixtures),
                                            ::testing::Values(Memory::kRoomy, Memory::kTight)),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param);
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name +
                                  (std::get<1>(info.param) == Memory::kRoomy ? "_Roomy" : "_Tight");
                         });

}  // namespace
}  // namespace quilt::engine
