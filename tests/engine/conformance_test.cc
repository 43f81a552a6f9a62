// Conformance: every reference case of expected.json, submitted at once so they share batches.
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "adapters/peft_adapter.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using testing::Collector;
using testing::load_expected;
using testing::source_path;

double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

class ConformanceTest : public ::testing::TestWithParam<EngineOptions> {
 protected:
  void SetUp() override {
    auto e = Engine::create(source_path("examples/models/tiny-llama"), GetParam());
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::move(e).value();
    expected_ = load_expected();
    for (const auto& name : expected_["adapters"]) {
      auto a = adapters::load_peft_adapter_dir(source_path("examples/adapters/" + name.get<std::string>()),
                                               engine_->config());
      ASSERT_TRUE(a.ok()) << a.status().to_string();
      adapters_[name] = *a;
    }
  }

  std::unique_ptr<Engine> engine_;
  nlohmann::json expected_;
  std::map<std::string, std::shared_ptr<const LoraWeights>> adapters_;
};

TEST_P(ConformanceTest, EveryCaseMatchesTransformersInOneMixedBatch) {
  Collector collector;
  const auto& cases = expected_["cases"];
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    Request r;
    r.id = i;
    r.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    if (!c["adapter"].is_null()) r.adapter = adapters_.at(c["adapter"]);
    r.sampling.max_tokens = static_cast<int32_t>(c["greedy_ids"].size());
    r.sampling.ignore_eos = true;
    r.capture_logits = true;
    r.on_event = collector.callback();
    ASSERT_TRUE(engine_->submit(std::move(r)).ok());
  }
  ASSERT_TRUE(collector.wait(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const testing::Outcome o = collector.get(i);
    const std::string label = "case " + std::to_string(i) + " adapter " + c["adapter"].dump();
    EXPECT_EQ(o.tokens, c["greedy_ids"].get<std::vector<int32_t>>()) << label;
    ASSERT_EQ(o.first_logits.size(), c["first_logits"].size()) << label;
    EXPECT_LT(relative_error(o.first_logits, c["first_logits"].get<std::vector<double>>()), 1e-4) << label;
    EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength) << label;
  }
  EXPECT_GT(engine_->stats().steps, 0u);
  if (GetParam().max_adapter_slots == 2) {
    // The tight configuration must really have exercised the paths it is there for.
    EXPECT_GT(engine_->stats().preemptions, 0u);
    EXPECT_GT(engine_->stats().adapter_evictions, 0u);
  }
}

EngineOptions roomy() { return EngineOptions{}; }

// Small steps force chunked prefill; a tiny KV cache forces preemption by recompute; a pool with
// room for two adapters forces adapter eviction and reload. Results must not change.
EngineOptions tight() {
  EngineOptions o;
  o.max_step_tokens = 48;
  o.block_size = 8;
  // 2 layers * 2 (K,V) * 8 tokens * 32 kv_dim * 4 bytes = 4 KiB a block: 60 blocks = 480 tokens,
  // less than the two long cases (325 tokens each) need together.
  o.kv_cache_bytes = 60 * 4096;
  o.max_adapter_slots = 2;
  return o;
}

INSTANTIATE_TEST_SUITE_P(Engine, ConformanceTest, ::testing::Values(roomy(), tight()),
                         [](const auto& info) { return info.index == 0 ? "Roomy" : "Tight"; });

}  // namespace
}  // namespace quilt::engine
