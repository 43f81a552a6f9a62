// Post-processors from tokenizer.json, and transformers' add_bos_token / add_eos_token rule.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

// What add_special_tokens puts around a single sequence.
struct SpecialTokenFrame {
  std::vector<int32_t> prefix, suffix;
};

// Parses the "post_processor" object: TemplateProcessing (its "single" template), ByteLevel
// (adds nothing), RobertaProcessing, BertProcessing, Sequence; null adds nothing. Others are
// refused with Unimplemented naming `where`.type and the value.
Result<SpecialTokenFrame> post_processor_from_json(const nlohmann::json& j,
                                                   const std::string& where);

// transformers rebuilds the post-processor of the Llama and Gemma tokenizer classes (and their
// relatives) from tokenizer_config.json's add_bos_token / add_eos_token, whatever tokenizer.json
// says. True when `tokenizer_class` is one of them.
bool takes_special_tokens_from_config(const std::string& tokenizer_class);

}  // namespace quilt::engine
