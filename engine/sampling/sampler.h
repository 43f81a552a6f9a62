// Turns one row of logits into a token: greedy, temperature, top-k, top-p, with a per-request RNG.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/request.h"

namespace quilt::engine {

// The sampling rule itself, shared by the cpu backend and (in kernels/sampling) the cuda one:
// greedy when spec.temperature ≤ 0, else the temperature/top-k/top-p warpers and the draw
// u = spec.uniform · total. `order` and `probs` are scratch.
SampledToken sample_logits(std::span<const float> logits, const SampleSpec& spec,
                           std::vector<int32_t>& order, std::vector<float>& probs);

// Each sequence owns one, so its draws never depend on what else shares the batch.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

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
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // scratch
  std::vector<float> probs_;    // scratch
};

}  // namespace quilt::engine
