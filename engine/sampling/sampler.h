// Turns one row of logits into a token: greedy, temperature, top-k, top-p, with a per-request RNG.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/request.h"

namespace quilt::engine {

// The sampling rule itself, shared by the cpu backend and (in kernels/sampling) the cuda one:
// greedy when spec.temperature ≤ 0, else the temperature/top-k/top-p warpers and the draw
// u = spec.uniform · total. `order` and `probs` are scratch.
SampledToken sample_logits(std::span<const float> logits, const SampleSpec& spec,
                           std::vector<int32_t>& order, std::vector<float>& probs);

// The log-softmax of `logits` at `token`, and the `top` best entries (ties by id): a prompt
// token's log-probability, from the raw logits.
PromptLogprob score_token(std::span<const float> logits, int32_t token, int32_t top);

// logit_bias ids inside [0, vocab) and biases and penalties in OpenAI's ranges.
Status validate_logit_adjustments(const SamplingParams& s, int64_t vocab);

// Each sequence owns one, so its draws never depend on what else shares the batch.
class Sampler {
 public:
  // `tokens` (may be null) is the sequence's token list, prompt first: the presence and
  // frequency penalties count its entries from `num_prompt` on. It must outlive the sampler.
  explicit Sampler(const SamplingParams& params, const std::vector<int32_t>* tokens = nullptr,
                   size_t num_prompt = 0);

  struct Sample {
    int32_t token;
    float logprob = 0.f;  // log-softmax of the raw logits at `token` (when logprobs > 0)
    std::vector<TopLogprob> top;
  };
  Sample sample(std::span<const float> logits);
  // This step's spec for a backend's sample(): the parameters and, when sampling (temperature >
  // 0), the next canonical draw of this sequence's RNG, the one draw sample() would make.
  SampleSpec next_spec();

 private:
  // logit_bias and the penalties over the tokens generated so far, one entry per id.
  std::vector<std::pair<int32_t, float>> logit_adjust();

  SamplingParams params_;
  std::mt19937_64 rng_;
  const std::vector<int32_t>* tokens_;
  size_t counted_;                             // tokens_ entries already in counts_
  std::unordered_map<int32_t, int32_t> counts_;  // generated token -> occurrences
  std::vector<int32_t> order_;  // scratch
  std::vector<float> probs_;    // scratch
};

}  // namespace quilt::engine
