// Sequence construction.
#include "engine/scheduler/sequence.h"

namespace quilt::engine {

Sequence::Sequence(Request r, const Tokenizer* tokenizer)
    : request(std::move(r)), sampler(request.sampling, &tokens, request.prompt.size()), stops(request.sampling.stop) {
  tokens = request.prompt;
  num_prompt = static_cast<int32_t>(tokens.size());
  if (tokenizer) decoder = std::make_unique<IncrementalDecoder>(*tokenizer, /*skip_special_tokens=*/true);
}

}  // namespace quilt::engine
