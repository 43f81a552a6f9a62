// Sequence construction.
#include "engine/scheduler/sequence.h"

#include <algorithm>

namespace quilt::engine {

Sequence::Sequence(Request r, const Tokenizer* tokenizer)
    : request(std::move(r)), sampler(request.sampling, &tokens, request.prompt.size()), stops(request.sampling.stop) {
  tokens = request.prompt;
  num_prompt = static_cast<int32_t>(tokens.size());
  if (tokenizer) decoder = std::make_unique<IncrementalDecoder>(*tokenizer, /*skip_special_tokens=*/true);
}

std::pair<int32_t, int32_t> prompt_logprob_positions(const Sequence& seq, int32_t count) {
  if (!seq.request.prompt_logprobs) return {0, 0};
  const int32_t first = std::max(seq.num_computed, seq.prompt_logprobs_done);
  const int32_t last = std::min(seq.num_computed + count, seq.num_prompt - 1);
  return {first, std::max(first, last)};
}

}  // namespace quilt::engine
