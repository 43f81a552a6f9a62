// What the engine takes (Request) and what it emits (TokenEvent). No HTTP, keys or storage here.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/model/lora_weights.h"

namespace quilt::engine {

struct SamplingParams {
  float temperature = 0.f;        // 0: greedy
  float top_p = 1.f;              // (0, 1]
  int32_t top_k = 0;              // 0: off
  std::optional<uint64_t> seed;   // same seed, same tokens, whatever shares the batch
  int32_t max_tokens = 16;
  bool ignore_eos = false;
  std::vector<std::string> stop;  // stop strings; the matched text is not returned
  int32_t logprobs = 0;           // top-N log-probabilities per generated token
  // OpenAI's logit_bias: (token id, bias in [-100, 100]) added to that token's logit.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // OpenAI's penalties, in [-2, 2], over the tokens generated so far (not the prompt, as vLLM):
  // presence subtracts once from every token that appeared, frequency once per appearance.
  float presence_penalty = 0.f;
  float frequency_penalty = 0.f;
};

enum class FinishReason { kNone, kStop, kLength, kAborted, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error"

struct TopLogprob {
  int32_t token;
  float logprob;
};

// The log-probability of one prompt token given the tokens before it, with the top list.
struct PromptLogprob {
  int32_t token;
  float logprob;
  std::vector<TopLogprob> top;  // sampling.logprobs entries
};

// One step's output for one request. Events of a request arrive in order on the engine thread.
struct TokenEvent {
  uint64_t request_id = 0;
  std::optional<int32_t> token;   // the sampled token (none on a final event without a token)
  std::string text;               // newly complete text (UTF-8 whole, stop strings held back)
  float logprob = 0.f;            // of `token`, when sampling.logprobs > 0
  std::vector<TopLogprob> top_logprobs;
  std::vector<float> logits;      // the full first-step logits, when Request::capture_logits
  // On the first token's event, when Request::prompt_logprobs: prompt tokens 1..n-1 (the first
  // has no context to be predicted from), from the raw logits (no bias or penalty).
  std::vector<PromptLogprob> prompt_logprobs;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  Status error;                   // set when finish_reason == kError
  // Token events: seconds from the engine taking the request to the first step that computed it.
  double queue_seconds = -1;
  int32_t prompt_tokens = 0;      // on the final event: usage
  int32_t completion_tokens = 0;
};

using EventCallback = std::function<void(const TokenEvent&)>;

struct Request {
  uint64_t id = 0;                 // unique among live requests; the caller picks it
  std::vector<int32_t> prompt;     // token ids, BOS already in place if wanted
  std::shared_ptr<const LoraWeights> adapter;  // null: the base model
  std::string tenant;              // fair-share bookkeeping only
  double tenant_weight = 1.0;
  SamplingParams sampling;
  bool capture_logits = false;     // first event carries the full first-step logits (tests, debugging)
  // The first event carries the prompt's log-probabilities (OpenAI's echo with logprobs), with
  // sampling.logprobs top entries each. Costs the lm-head over every prompt row, once.
  bool prompt_logprobs = false;
  // Past it the request ends with kError / Unavailable("deadline ...") and frees what it held.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // Called on the engine thread for every event; must return quickly and never block.
  EventCallback on_event;
};

}  // namespace quilt::engine
