// Turns one row of logits into a token: greedy, temperature, top-k, top-p, with a per-request RNG.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "engine/request.h"

namespace quilt::engine {

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

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // scratch
  std::vector<float> probs_;    // scratch
};

}  // namespace quilt::engine
