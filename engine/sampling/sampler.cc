// Sampler: HF-style warpers (temperature, then top-k, then top-p) and a seeded draw.
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
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

SampledToken sample_logits(std::span<const float> raw, const SampleSpec& spec,
                           std::vector<int32_t>& order, std::vector<float>& probs) {
  // Biases and penalties first, on a copy: the caller's logits stay as the model made them.
  thread_local std::vector<float> adjusted;
  std::span<const float> logits = raw;
  if (!spec.logit_adjust.empty()) {
    adjusted.assign(raw.begin(), raw.end());
    for (const auto& [id, delta] : spec.logit_adjust) {
      if (id >= 0 && static_cast<size_t>(id) < adjusted.size()) adjusted[id] += delta;
    }
    logits = adjusted;
  }
  const int32_t vocab = static_cast<int32_t>(logits.size());
  // Highest logit first, ties by id, so that no order depends on the sort algorithm.
  auto higher = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  SampledToken out;
  if (spec.temperature <= 0.f) {
    // Greedy; ties go to the lowest id, as torch.argmax does.
    out.token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  } else {
    order.resize(vocab);
    std::iota(order.begin(), order.end(), 0);
    int32_t keep = vocab;
    if (spec.top_k > 0 && spec.top_k < vocab) keep = spec.top_k;
    if (keep < vocab || spec.top_p < 1.f) {
      std::partial_sort(order.begin(), order.begin() + keep, order.end(), higher);
    }
    probs.resize(keep);
    const float inv_t = 1.f / spec.temperature;
    const float top = *std::max_element(logits.begin(), logits.end()) * inv_t;
    double total = 0;
    for (int32_t i = 0; i < keep; ++i) {
      probs[i] = std::exp(logits[order[i]] * inv_t - top);
      total += probs[i];
    }
    if (spec.top_p < 1.f) {
      // Smallest prefix whose probability reaches top_p (always at least one token).
      double cum = 0;
      int32_t n = 0;
      while (n < keep) {
        cum += probs[n++] / total;
        if (cum >= spec.top_p) break;
      }
      keep = n;
      total = 0;
      for (int32_t i = 0; i < keep; ++i) total += probs[i];
    }
    // What std::uniform_real_distribution<double>(0, total) makes of the same canonical draw.
    const double u = spec.uniform * (total - 0.0) + 0.0;
    double cum = 0;
    out.token = order[keep - 1];
    for (int32_t i = 0; i < keep; ++i) {
      cum += probs[i];
      if (u < cum) {
        out.token = order[i];
        break;
      }
    }
  }
  if (spec.logprobs == 0) return out;  // a full log-softmax only when asked for
  const float lse = log_sum_exp(logits);
  out.logprob = logits[out.token] - lse;
  const int32_t n = std::min(spec.logprobs, vocab);
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), higher);
  for (int32_t i = 0; i < n; ++i) out.top.emplace_back(ids[i], logits[ids[i]] - lse);
  return out;
}

PromptLogprob score_token(std::span<const float> logits, int32_t token, int32_t top) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  const float lse = log_sum_exp(logits);
  PromptLogprob out{token, logits[token] - lse, {}};
  const int32_t n = std::min(top, vocab);
  if (n <= 0) return out;
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int32_t i = 0; i < n; ++i) out.top.push_back({ids[i], logits[ids[i]] - lse});
  return out;
}

Status validate_logit_adjustments(const SamplingParams& s, int64_t vocab) {
  for (const auto& [id, bias] : s.logit_bias) {
    if (id < 0 || id >= vocab) {
      return Status::InvalidArgument("logit_bias: token id " + std::to_string(id) +
                                     " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    if (!(bias >= -100.f && bias <= 100.f)) {
      return Status::InvalidArgument("logit_bias: a bias must be in [-100, 100]");
    }
  }
  if (!(s.presence_penalty >= -2.f && s.presence_penalty <= 2.f)) {
    return Status::InvalidArgument("presence_penalty: must be in [-2, 2]");
  }
  if (!(s.frequency_penalty >= -2.f && s.frequency_penalty <= 2.f)) {
    return Status::InvalidArgument("frequency_penalty: must be in [-2, 2]");
  }
  return Status::OK();
}

Sampler::Sampler(const SamplingParams& params, const std::vector<int32_t>* tokens,
                 size_t num_prompt)
    : params_(params),
      rng_(params.seed ? *params.seed : fresh_seed()),
      tokens_(tokens),
      counted_(num_prompt) {}

std::vector<std::pair<int32_t, float>> Sampler::logit_adjust() {
  const bool penalties = params_.presence_penalty != 0.f || params_.frequency_penalty != 0.f;
  if (penalties && tokens_ != nullptr) {
    // Generated tokens are only ever appended (a preempted sequence keeps them): count the new.
    for (; counted_ < tokens_->size(); ++counted_) ++counts_[(*tokens_)[counted_]];
  }
  if (params_.logit_bias.empty() && (!penalties || counts_.empty())) return {};
  std::map<int32_t, float> adjust;
  for (const auto& [id, bias] : params_.logit_bias) adjust[id] += bias;
  if (penalties) {
    for (const auto& [id, count] : counts_) {
      adjust[id] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
    }
  }
  return {adjust.begin(), adjust.end()};
}

SampleSpec Sampler::next_spec() {
  SampleSpec s;
  s.temperature = params_.temperature;
  s.top_p = params_.top_p;
  s.top_k = params_.top_k;
  s.logprobs = params_.logprobs;
  s.logit_adjust = logit_adjust();
  // Greedy draws nothing, so a greedy request's RNG never moves (as before this split).
  if (s.temperature > 0.f) s.uniform = std::generate_canonical<double, 53>(rng_);
  return s;
}

Sampler::Sample Sampler::sample(std::span<const float> logits) {
  SampledToken t = sample_logits(logits, next_spec(), order_, probs_);
  Sample out{t.token, t.logprob, {}};
  for (const auto& [id, lp] : t.top) out.top.push_back({id, lp});
  return out;
}

}  // namespace quilt::engine
