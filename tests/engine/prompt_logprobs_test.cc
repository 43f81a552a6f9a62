// Prompt log-probabilities (Request::prompt_logprobs, OpenAI's echo with logprobs) against Hugging
// Face (tests/data/prompt_logprobs.json, tools/make_prompt_logprobs.py): every prompt token's
// log-probability within 1e-4 and the same top ids, all cases in one batch, with roomy memory and
// with a tight configuration that forces chunked prefill and preemption by recompute (the values
// are computed once and must not change); a request that does not ask gets none.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>

#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

struct Seen {
  std::vector<std::vector<PromptLogprob>> prompt;  // one entry per event that carried any
  int32_t events = 0;
  bool first_event_had_them = false;
};

class PromptLogprobsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    expected_ = testing::load_json(testing::source_path("tests/data/prompt_logprobs.json"));
    fixture_ = testing::reference_fixture("llama");
    auto cfg = load_model_config(fixture_.model_dir);
    ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
    EngineOptions o;
    if (GetParam()) {
      // Steps of 48 tokens split the 301-token prompts; 40 blocks of 8 tokens cannot hold both of
      // them and their generation at once, so one is preempted and recomputed.
      o.max_step_tokens = 48;
      o.block_size = 8;
      o.kv_cache_bytes = 40 * int64_t{cfg->num_layers} * 2 * o.block_size * cfg->kv_dim() * 4;
    }
    auto e = Engine::create(fixture_.model_dir, o);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::move(e).value();
    auto a = testing::load_adapters(fixture_, testing::load_expected(), engine_->config());
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    adapters_ = std::move(a).value();
  }

  Request request(uint64_t id, const nlohmann::json& c, bool want, int32_t max_tokens) {
    Request r;
    r.id = id;
    r.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    if (!c["adapter"].is_null()) r.adapter = adapters_.at(c["adapter"].get<std::string>());
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    r.sampling.logprobs = expected_["top"].get<int32_t>();
    r.prompt_logprobs = want;
    r.on_event = [this, id](const TokenEvent& ev) {
      std::lock_guard lock(mu_);
      Seen& s = seen_[id];
      if (!ev.prompt_logprobs.empty()) {
        s.prompt.push_back(ev.prompt_logprobs);
        if (s.events == 0) s.first_event_had_them = true;
      }
      ++s.events;
      if (ev.finished) {
        ++finished_;
        cv_.notify_all();
      }
    };
    return r;
  }

  bool wait(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(300), [&] { return finished_ >= n; });
  }

  nlohmann::json expected_;
  testing::ReferenceFixture fixture_;
  std::unique_ptr<Engine> engine_;
  std::map<std::string, std::shared_ptr<const LoraWeights>> adapters_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Seen> seen_;
  size_t finished_ = 0;
};

TEST_P(PromptLogprobsTest, MatchTransformersOnceEvenWithChunksAndPreemption) {
  const auto& cases = expected_["cases"];
  ASSERT_GT(cases.size(), 0u);
  // Each case twice: asking (id 2i) and not asking (id 2i + 1), in one batch.
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(engine_->submit(request(2 * i, cases[i], true, 24)).ok());
    ASSERT_TRUE(engine_->submit(request(2 * i + 1, cases[i], false, 24)).ok());
  }
  ASSERT_TRUE(wait(2 * cases.size()));
  double worst = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string label = "case " + c["case"].dump() + " adapter " + c["adapter"].dump();
    std::lock_guard lock(mu_);
    EXPECT_TRUE(seen_[2 * i + 1].prompt.empty()) << label << ": not asked, yet given";
    const Seen& s = seen_[2 * i];
    ASSERT_EQ(s.prompt.size(), 1u) << label << ": given once, on one event";
    EXPECT_TRUE(s.first_event_had_them) << label;
    const std::vector<PromptLogprob>& got = s.prompt[0];
    const auto ids = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto ref = c["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), ids.size() - 1) << label;
    for (size_t p = 0; p < got.size(); ++p) {
      EXPECT_EQ(got[p].token, ids[p + 1]) << label << " position " << p;
      const double err = std::abs(got[p].logprob - ref[p]);
      worst = std::max(worst, err);
      EXPECT_LT(err, 1e-4) << label << " position " << p;
      ASSERT_EQ(got[p].top.size(), c["top_ids"][p].size()) << label;
      for (size_t k = 0; k < got[p].top.size(); ++k) {
        const double want = c["top_logprobs"][p][k].get<double>();
        EXPECT_LT(std::abs(got[p].top[k].logprob - want), 1e-4) << label << " position " << p;
        // Ids may swap only where two log-probabilities are closer than the tolerance.
        if (got[p].top[k].token != c["top_ids"][p][k].get<int32_t>()) {
          const double other = k + 1 < got[p].top.size() ? c["top_logprobs"][p][k + 1].get<double>() : want;
          const double prev = k > 0 ? c["top_logprobs"][p][k - 1].get<double>() : want;
          EXPECT_TRUE(std::abs(other - want) < 1e-4 || std::abs(prev - want) < 1e-4)
              << label << " position " << p << " rank " << k;
        }
      }
    }
  }
  std::printf("[ numbers  ] %zu prompts, worst prompt logprob error %.2g\n", cases.size(), worst);
  if (GetParam()) EXPECT_GT(engine_->stats().preemptions, 0u);
}

INSTANTIATE_TEST_SUITE_P(Memory, PromptLogprobsTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tight" : "Roomy"; });

}  // namespace
}  // namespace quilt::engine
