// Sampler: greedy, warpers and seeded reproducibility.
#include "engine/sampling/sampler.h"

#include <cmath>
#include <map>

#include <gtest/gtest.h>

namespace quilt::engine {
namespace {

std::vector<float> logits_of(std::vector<float> v) { return v; }

TEST(SamplerTest, GreedyPicksTheLargestLogitAndItsLogprob) {
  SamplingParams p;
  p.logprobs = 1;
  Sampler s(p);
  auto out = s.sample(logits_of({0.5f, 3.0f, -1.0f, 2.9f}));
  EXPECT_EQ(out.token, 1);
  const double lse = std::log(std::exp(0.5) + std::exp(3.0) + std::exp(-1.0) + std::exp(2.9));
  EXPECT_NEAR(out.logprob, 3.0 - lse, 1e-5);
}

TEST(SamplerTest, GreedyTiesGoToTheLowestId) {
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.sample(logits_of({1.f, 4.f, 4.f})).token, 1);
}

TEST(SamplerTest, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  std::vector<float> logits(64);
  for (int i = 0; i < 64; ++i) logits[i] = std::sin(i * 0.7f);
  Sampler a(p), b(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(logits).token);
    tb.push_back(b.sample(logits).token);
  }
  EXPECT_EQ(ta, tb);
  p.seed = 43;
  Sampler c(p);
  std::vector<int32_t> tc;
  for (int i = 0; i < 50; ++i) tc.push_back(c.sample(logits).token);
  EXPECT_NE(ta, tc);
}

TEST(SamplerTest, TopKOneAndTinyTopPAreGreedy) {
  std::vector<float> logits = {0.1f, 0.2f, 5.0f, 0.3f, 4.9f};
  SamplingParams k;
  k.temperature = 2.0f;
  k.top_k = 1;
  k.seed = 1;
  SamplingParams p = k;
  p.top_k = 0;
  p.top_p = 1e-6f;
  Sampler sk(k), sp(p);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(sk.sample(logits).token, 2);
    EXPECT_EQ(sp.sample(logits).token, 2);
  }
}

TEST(SamplerTest, TopKRestrictsToTheKBest) {
  SamplingParams p;
  p.temperature = 10.0f;  // nearly uniform before the cut
  p.top_k = 2;
  p.seed = 7;
  Sampler s(p);
  std::vector<float> logits = {1.f, 3.f, 2.f, 0.f};
  for (int i = 0; i < 200; ++i) {
    const int32_t t = s.sample(logits).token;
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
}

TEST(SamplerTest, TemperatureOneFollowsTheSoftmax) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 3;
  Sampler s(p);
  std::vector<float> logits = {0.f, std::log(3.f)};  // p = 0.25, 0.75
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.sample(logits).token;
  EXPECT_NEAR(ones / static_cast<double>(n), 0.75, 0.02);
}

TEST(SamplerTest, LogprobsListsTheTopN) {
  SamplingParams p;
  p.logprobs = 2;
  Sampler s(p);
  auto out = s.sample(logits_of({1.f, 3.f, 2.f}));
  ASSERT_EQ(out.top.size(), 2u);
  EXPECT_EQ(out.top[0].token, 1);
  EXPECT_EQ(out.top[1].token, 2);
  EXPECT_GT(out.top[0].logprob, out.top[1].logprob);
  EXPECT_LT(out.top[0].logprob, 0.f);
}

TEST(SamplerTest, LogitBiasMovesTheChoiceAndTheLogprobs) {
  SamplingParams p;
  p.logprobs = 2;
  p.logit_bias = {{2, 5.f}, {1, -100.f}};
  Sampler s(p);
  auto out = s.sample(logits_of({0.5f, 3.0f, -1.0f, 2.9f}));
  EXPECT_EQ(out.token, 2);  // -1 + 5 beats 2.9, and 3 - 100 is out of the race
  const double lse = std::log(std::exp(0.5) + std::exp(3.0 - 100) + std::exp(4.0) + std::exp(2.9));
  EXPECT_NEAR(out.logprob, 4.0 - lse, 1e-5);
  ASSERT_EQ(out.top.size(), 2u);
  EXPECT_EQ(out.top[1].token, 3);
}

TEST(SamplerTest, PenaltiesCountGeneratedTokensOnlyAndFoldWithTheBias) {
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  p.logit_bias = {{7, 1.f}};
  std::vector<int32_t> tokens = {4, 4, 9};  // the prompt: never penalized
  Sampler s(p, &tokens, tokens.size());
  using Adjust = std::vector<std::pair<int32_t, float>>;
  EXPECT_EQ(s.next_spec().logit_adjust, (Adjust{{7, 1.f}}));
  tokens.insert(tokens.end(), {5, 7, 5});
  EXPECT_EQ(s.next_spec().logit_adjust, (Adjust{{5, -1.f}, {7, 0.25f}}));
  tokens.push_back(5);  // counted incrementally: only the new token is added
  EXPECT_EQ(s.next_spec().logit_adjust, (Adjust{{5, -1.25f}, {7, 0.25f}}));
}

TEST(SamplerTest, PenaltiesChangeGreedyChoices) {
  SamplingParams p;
  p.frequency_penalty = 2.f;
  std::vector<int32_t> tokens = {0};
  Sampler s(p, &tokens, 1);
  const std::vector<float> logits = {0.f, 3.f, 2.f, 1.5f};
  for (int i = 0; i < 4; ++i) tokens.push_back(s.sample(logits).token);
  // 1 (3); then 2 (3 - 2 < 2); then 3 (1, 0, 1.5); then 1 again (3 - 2 = 1 beats 0, 2 - 2, 1.5 - 2).
  EXPECT_EQ(tokens, (std::vector<int32_t>{0, 1, 2, 3, 1}));
}

TEST(SamplerTest, AdjustmentsAreValidatedAgainstTheVocabulary) {
  SamplingParams p;
  EXPECT_TRUE(validate_logit_adjustments(p, 10).ok());
  p.logit_bias = {{10, 1.f}};
  EXPECT_EQ(validate_logit_adjustments(p, 10).code(), StatusCode::kInvalidArgument);
  p.logit_bias = {{9, 101.f}};
  EXPECT_FALSE(validate_logit_adjustments(p, 10).ok());
  p.logit_bias = {};
  p.presence_penalty = 2.5f;
  EXPECT_FALSE(validate_logit_adjustments(p, 10).ok());
}

}  // namespace
}  // namespace quilt::engine
