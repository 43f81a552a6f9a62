// GPU conformance: every reference case of expected.json submitted at once to an Engine on the cuda
// backend (fp16 weights, activations, KV cache and adapter pages, the default), against the
// float32 Hugging Face reference. 16-bit storage cannot be token-exact, so: first-step logits
// within ‖Δ‖/‖ref‖ < 2e-2; greedy ids equal up to the first step whose reference margin (top-1
// minus top-2 logit) is below kMinMargin, where rounding may legitimately pick the runner-up; and
// the same request gives the same tokens alone as inside the mixed batch (over the same prefix).
// Every case is held to these bounds. bf16 storage is not: with the fixture's all-module adapters
// its 8-bit mantissa alone puts the first-step logits at 2-8e-2 (forward_precision_cuda_test.cc
// measures why), so the bf16 backend is held to the op-level consistency suite only.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "adapters/peft_adapter.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using quilt::testing::Collector;
using quilt::testing::load_expected;
using quilt::testing::source_path;

constexpr double kLogitTolerance = 2e-2;  // issue 9's bound
constexpr double kMinMargin = 0.05;

double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

// Steps before the first whose reference margin is below kMinMargin.
size_t safe_prefix(const nlohmann::json& c) {
  const auto margins = c["margins"].get<std::vector<double>>();
  size_t n = 0;
  while (n < margins.size() && margins[n] >= kMinMargin) ++n;
  return n;
}

std::vector<int32_t> head(const std::vector<int32_t>& v, size_t n) {
  return {v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(n, v.size()))};
}

EngineOptions cuda_options() {
  EngineOptions o;
  o.device = "cuda";
  o.kv_cache_bytes = 8 << 20;  // bf16: 2 layers * 2 * 16 tokens * 32 * 2 bytes = 4 KiB a block
  o.lora_pool_bytes = 8 << 20;
  return o;
}

class ConformanceCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::create(source_path("examples/models/tiny-llama"), cuda_options());
#ifdef QUILT_CUDA_SIM
    ASSERT_TRUE(e.ok()) << e.status().to_string();
#else
    if (!e.ok()) GTEST_SKIP() << e.status().to_string();
#endif
    engine_ = std::move(e).value();
    expected_ = load_expected();
    for (const auto& name : expected_["adapters"]) {
      auto a = adapters::load_peft_adapter_dir(
          source_path("examples/adapters/" + name.get<std::string>()), engine_->config());
      ASSERT_TRUE(a.ok()) << a.status().to_string();
      adapters_[name] = *a;
    }
  }

  Request request(size_t i, Collector& collector) {
    const auto& c = expected_["cases"][i];
    Request r;
    r.id = i;
    r.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    if (!c["adapter"].is_null()) r.adapter = adapters_.at(c["adapter"]);
    r.sampling.max_tokens = static_cast<int32_t>(c["greedy_ids"].size());
    r.sampling.ignore_eos = true;
    r.capture_logits = true;
    r.on_event = collector.callback();
    return r;
  }

  std::unique_ptr<Engine> engine_;
  nlohmann::json expected_;
  std::map<std::string, std::shared_ptr<const LoraWeights>> adapters_;
};

TEST_F(ConformanceCudaTest, EveryCaseInOneMixedBatchAndAloneMatchesTransformers) {
  const auto& cases = expected_["cases"];
  Collector batch;
  for (size_t i = 0; i < cases.size(); ++i) ASSERT_TRUE(engine_->submit(request(i, batch)).ok());
  ASSERT_TRUE(batch.wait(cases.size(), std::chrono::seconds(300)));

  double worst_logits = 0;
  size_t compared = 0, total = 0, agreed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const testing::Outcome o = batch.get(i);
    const std::string label = "case " + std::to_string(i) + " adapter " + c["adapter"].dump();
    ASSERT_EQ(o.first_logits.size(), c["first_logits"].size()) << label;
    const double err = relative_error(o.first_logits, c["first_logits"].get<std::vector<double>>());
    worst_logits = std::max(worst_logits, err);
    std::printf("[ conformance ] %-32s first-step logits |d|/|ref| = %.3g\n", label.c_str(), err);
    EXPECT_LT(err, kLogitTolerance) << label;
    const size_t n = safe_prefix(c);
    const std::vector<int32_t> ref = c["greedy_ids"].get<std::vector<int32_t>>();
    size_t agree = 0;
    while (agree < n && agree < o.tokens.size() && o.tokens[agree] == ref[agree]) ++agree;
    EXPECT_EQ(agree, n) << label << " leaves the reference at step " << agree
                        << " of a margin-safe " << n;
    agreed += agree;
    EXPECT_EQ(o.tokens.size(), c["greedy_ids"].size()) << label;
    EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength) << label;
    compared += n;
    total += c["greedy_ids"].size();
  }
  std::printf(
      "[ conformance ] %zu cases: worst first-step logits |d|/|ref| = %.3g; %zu of %zu "
      "margin-safe greedy ids agree (%zu ids in all, margin >= %.2f)\n",
      static_cast<size_t>(cases.size()), worst_logits, agreed, compared, total, kMinMargin);

  // Alone: a base case, an all-module adapter case, the case closest to the logit bound, and the
  // long prompt with an adapter, one at a time.
  for (size_t i : {size_t{0}, size_t{2}, size_t{27}, cases.size() - 1}) {
    Collector alone;
    ASSERT_TRUE(engine_->submit(request(i, alone)).ok());
    ASSERT_TRUE(alone.wait(1, std::chrono::seconds(300)));
    const size_t n = safe_prefix(cases[i]);
    EXPECT_EQ(head(alone.get(i).tokens, n), head(batch.get(i).tokens, n))
        << "case " << i << " alone differs from the same case inside the mixed batch";
  }
}

}  // namespace
}  // namespace quilt::engine
