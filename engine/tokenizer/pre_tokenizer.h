// Pre-tokenizers from tokenizer.json: cut text into the words that the model encodes one by one.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

// A piece of text on its way to the model. `at_start`: it begins at offset 0 of the input text
// (Metaspace's prepend_scheme "first" adds its "▁" only there).
struct PreToken {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;

  // Parses the "pre_tokenizer" object; `where` names the file and field for error messages.
  // Supported: Sequence, Split (Regex or String pattern, every behavior, invert), ByteLevel,
  // Metaspace, Whitespace, WhitespaceSplit, Punctuation, Digits, BertPreTokenizer,
  // CharDelimiterSplit, FixedLength. Others are refused with Unimplemented.
  static Result<std::unique_ptr<PreTokenizer>> from_json(const nlohmann::json& j,
                                                         const std::string& where);

  // Replaces each piece by the pieces it splits into; empty pieces are dropped. Thread-safe.
  virtual void split(std::vector<PreToken>& pieces) const = 0;
};

}  // namespace quilt::engine
