// GPU conformance, per architecture: every reference case of a fixture (engine_harness.h's
// reference fixtures, the CPU conformance suite's) submitted at once to an Engine on the cuda
// backend (fp16 weights, activations, KV cache and adapter pages, the default), against the
// float32 Hugging Face reference. 16-bit storage cannot be token-exact, so (issue 9's bounds):
// first-step logits within ‖Δ‖/‖ref‖ < 2e-2; greedy ids equal up to the first step whose reference
// margin (top-1 minus top-2 logit) is below kMinMargin, where rounding may legitimately pick the
// runner-up; and the same request gives the same tokens alone as inside the mixed batch (over the
// same prefix). Every case is held to these bounds. bf16 storage is not: with the fixtures'
// all-module adapters its 8-bit mantissa alone puts the first-step logits at 2-8e-2
// (forward_precision_cuda_test.cc measures why), so the bf16 backend is held to the op-level
// consistency suite only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using quilt::testing::Collector;
using quilt::testing::ReferenceFixture;

// Fixtures of the CPU conformance suite (conformance_test.cc), one per device feature, to bound
// the simulator's time: llama; qwen2 (q/k/v biases); qwen3 (per-head q/k norms); mistral (a
// sliding window on every layer, exceeded by the long prompt); gemma2 (GeGLU, attention and final
// soft-capping, query scale, windows); gemma3 (q/k norms, local and global RoPE tables, windows
// interleaved); phi3-longrope (LongRoPE, fused qkv/gate_up); mistral-nemo (head_dim 32 with 4
// heads on hidden 64: q/o widths other than hidden). Left to the CPU suite: qwen2.5-untied and
// phi3, whose differences are in the weights' layout, not in the device ops.
const std::vector<std::string> kFixtures = {"llama",  "qwen2",  "qwen3",         "mistral",
                                            "gemma2", "gemma3", "phi3-longrope", "mistral-nemo"};

// Cases whose reference is measurably more sensitive to 16-bit storage than kMinMargin assumes;
// their ids are held to the reference only before `step`.
// mistral-nemo case 13 (adapter rs-r4: rsLoRA scale 4 on random, all-module A and B) at step 2,
// reference margin 0.12 (token 219 over 357): the CPU's float32 forward with every op's output
// rounded to fp16 where the cuda backend stores it (embedding, norms, GEMM outputs, rope, attention,
// activations, adapter pages; a throwaway experiment) gives logprobs 357: -1.428, 219: -1.506,
// the cuda backend's own swap (-1.440, -1.496): the kernels compute what fp16 storage allows.
// Hugging Face's own fp16 model narrows the margin to 0.07; rounding only layer 0's input-norm
// output to bf16 moves it by 0.5. Every other step and case of the fixture is held to the rule.
struct KnownSensitive {
  const char* fixture;
  size_t case_index;
  size_t step;
};
constexpr KnownSensitive kKnownSensitive[] = {{"mistral-nemo", 13, 2}};

constexpr double kLogitTolerance = 2e-2;  // issue 9's bound
constexpr double kMinMargin = 0.05;

// Steps before the first whose reference margin is below kMinMargin (or a known-sensitive step).
size_t safe_prefix(const std::string& fixture, size_t case_index, const nlohmann::json& c) {
  const auto margins = c["margins"].get<std::vector<double>>();
  size_t n = 0;
  while (n < margins.size() && margins[n] >= kMinMargin) ++n;
  for (const KnownSensitive& k : kKnownSensitive) {
    if (fixture == k.fixture && case_index == k.case_index) n = std::min(n, k.step);
  }
  return n;
}

std::vector<int32_t> head(const std::vector<int32_t>& v, size_t n) {
  return {v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(n, v.size()))};
}

EngineOptions cuda_options() {
  EngineOptions o;
  o.device = "cuda";
  o.kv_cache_bytes = 8 << 20;
  o.lora_pool_bytes = 8 << 20;
  return o;
}

class ConformanceCudaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = testing::reference_fixture(GetParam());
    expected_ = testing::load_json(fixture_.expected);
    auto e = Engine::create(fixture_.model_dir, cuda_options());
#ifdef QUILT_CUDA_SIM
    ASSERT_TRUE(e.ok()) << e.status().to_string();
#else
    if (!e.ok()) GTEST_SKIP() << e.status().to_string();
#endif
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

TEST_P(ConformanceCudaTest, EveryCaseInOneMixedBatchAndAloneMatchesTransformers) {
  const auto& cases = expected_["cases"];
  ASSERT_GT(cases.size(), 0u);
  Collector batch;
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(engine_->submit(testing::reference_request(cases[i], i, adapters_, batch)).ok());
  }
  ASSERT_TRUE(batch.wait(cases.size(), std::chrono::seconds(300)));

  double worst_logits = 0;
  size_t worst_case = 0, compared = 0, total = 0, agreed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const testing::Outcome o = batch.get(i);
    const std::string label =
        fixture_.name + " case " + std::to_string(i) + " adapter " + c["adapter"].dump();
    ASSERT_EQ(o.first_logits.size(), c["first_logits"].size()) << label;
    const double err =
        testing::relative_error(o.first_logits, c["first_logits"].get<std::vector<double>>());
    if (err > worst_logits) {
      worst_logits = err;
      worst_case = i;
    }
    EXPECT_LT(err, kLogitTolerance) << label;
    const size_t n = safe_prefix(fixture_.name, i, c);
    const std::vector<int32_t> ref = c["greedy_ids"].get<std::vector<int32_t>>();
    size_t agree = 0;
    while (agree < n && agree < o.tokens.size() && o.tokens[agree] == ref[agree]) ++agree;
    EXPECT_EQ(agree, n) << label << " leaves the reference at step " << agree
                        << " of a margin-safe " << n;
    agreed += agree;
    EXPECT_EQ(o.tokens.size(), ref.size()) << label;
    EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength) << label;
    compared += n;
    total += ref.size();
  }
  std::printf(
      "[ conformance ] %s: %zu cases: worst first-step logits |d|/|ref| = %.3g (case %zu); %zu "
      "of %zu margin-safe greedy ids agree (%zu ids in all, margin >= %.2f)\n",
      fixture_.name.c_str(), static_cast<size_t>(cases.size()), worst_logits, worst_case, agreed,
      compared, total, kMinMargin);

  // Alone: the case closest to the logit bound and the first case on an all-module adapter, one
  // at a time (two per fixture keep the simulator's time in bounds).
  std::vector<size_t> alone_cases = {worst_case};
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i]["adapter"].is_string() &&
        cases[i]["adapter"].get<std::string>().find("all") != std::string::npos) {
      alone_cases.push_back(i);
      break;
    }
  }
  std::sort(alone_cases.begin(), alone_cases.end());
  alone_cases.erase(std::unique(alone_cases.begin(), alone_cases.end()), alone_cases.end());
  for (size_t i : alone_cases) {
    Collector alone;
    ASSERT_TRUE(engine_->submit(testing::reference_request(cases[i], i, adapters_, alone)).ok());
    ASSERT_TRUE(alone.wait(1, std::chrono::seconds(300)));
    const size_t n = safe_prefix(fixture_.name, i, cases[i]);
    EXPECT_EQ(head(alone.get(i).tokens, n), head(batch.get(i).tokens, n))
        << fixture_.name << " case " << i
        << " alone differs from the same case inside the mixed batch";
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ConformanceCudaTest, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace quilt::engine
