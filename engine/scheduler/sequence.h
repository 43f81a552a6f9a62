// A request in flight: its tokens, KV blocks, adapter slot and output state. Engine thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "engine/request.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_strings.h"
#include "engine/tokenizer/tokenizer.h"

namespace quilt::engine {

struct Sequence {
  Sequence(Request r, const Tokenizer* tokenizer);
  // The sampler keeps a pointer to `tokens`: a sequence stays where it was made.
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_generated() const { return num_tokens() - num_prompt; }
  // Tokens whose K/V still have to be computed before the next sample (a prompt, or after
  // preemption by recompute, the prompt and every generated token).
  int32_t num_uncomputed() const { return num_tokens() - num_computed; }

  Request request;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t num_prompt = 0;
  int32_t num_computed = 0;     // tokens whose K/V are in the cache
  std::vector<int32_t> blocks;  // KV cache blocks, in order
  int32_t adapter_slot = -1;    // -1: base model, or adapter not resident yet
  bool has_adapter_slot = false;
  int32_t preemptions = 0;
  // Queue time: from here to the first step that computes any of it (-1 until then).
  std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
  double queue_seconds = -1;

  Sampler sampler;
  std::unique_ptr<IncrementalDecoder> decoder;  // null without a tokenizer
  StopStrings stops;
  bool logits_sent = false;
  // Request::prompt_logprobs: positions [0, prompt_logprobs_done) have given theirs (position p
  // predicts prompt token p + 1), gathered until the first token's event takes them. A recompute
  // after preemption does not compute them again.
  int32_t prompt_logprobs_done = 0;
  std::vector<PromptLogprob> prompt_logprobs;
};

// The prompt positions [first, second) of a step that computes `count` tokens from
// seq.num_computed on whose logits give prompt log-probabilities; empty when none are wanted.
std::pair<int32_t, int32_t> prompt_logprob_positions(const Sequence& seq, int32_t count);

}  // namespace quilt::engine
