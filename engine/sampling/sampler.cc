// Sampler: HF-style warpers (temperature, then top-k, then top-p) and a seeded draw.
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace quilt::engine {
namespace {

uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// log(Σ exp(x)), stable.
float log_sum_exp(std::span<const float> x) {
  const float m = *std::max_element(x.begin(), x.end());
  double s = 0;
  for (float v : x) s += std::exp(static_cast<double>(v - m));
  return m + static_cast<float>(std::log(s));
}

}  // namespace

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : fresh_seed()) {}

Sampler::Sample Sampler::sample(std::span<const float> logits) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  // Highest logit first, ties by id, so that no order depends on the sort algorithm.
  auto higher = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  Sample out;
  if (params_.temperature <= 0.f) {
    // Greedy; ties go to the lowest id, as torch.argmax does.
    out.token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  } else {
    order_.resize(vocab);
    std::iota(order_.begin(), order_.end(), 0);
    int32_t keep = vocab;
    if (params_.top_k > 0 && params_.top_k < vocab) keep = params_.top_k;
    if (keep < vocab || params_.top_p < 1.f) {
      std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), higher);
    }
    probs_.resize(keep);
    const float inv_t = 1.f / params_.temperature;
    const float top = *std::max_element(logits.begin(), logits.end()) * inv_t;
    double total = 0;
    for (int32_t i = 0; i < keep; ++i) {
      probs_[i] = std::exp(logits[order_[i]] * inv_t - top);
      total += probs_[i];
    }
    if (params_.top_p < 1.f) {
      // Smallest prefix whose probability reaches top_p (always at least one token).
      double cum = 0;
      int32_t n = 0;
      while (n < keep) {
        cum += probs_[n++] / total;
        if (cum >= params_.top_p) break;
      }
      keep = n;
      total = 0;
      for (int32_t i = 0; i < keep; ++i) total += probs_[i];
    }
    const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
    double cum = 0;
    out.token = order_[keep - 1];
    for (int32_t i = 0; i < keep; ++i) {
      cum += probs_[i];
      if (u < cum) {
        out.token = order_[i];
        break;
      }
    }
  }
  if (params_.logprobs == 0) return out;  // a full log-softmax only when asked for
  const float lse = log_sum_exp(logits);
  out.logprob = logits[out.token] - lse;
  const int32_t n = std::min(params_.logprobs, vocab);
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), higher);
  for (int32_t i = 0; i < n; ++i) out.top.push_back({ids[i], logits[ids[i]] - lse});
  return out;
}

}  // namespace quilt::engine
