// Pre-tokenizers from tokenizer.json: cut text into the words that BPE encodes one by one.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;

  // Parses the "pre_tokenizer" object; `where` names the file and field for error messages.
  // Supported: Sequence, Split (Regex or String pattern, every behavior, invert), ByteLevel.
  static Result<std::unique_ptr<PreTokenizer>> from_json(const nlohmann::json& j,
                                                         const std::string& where);

  // Replaces each piece by the pieces it splits into; empty pieces are dropped. Thread-safe.
  virtual void split(std::vector<std::string>& pieces) const = 0;

  // Whether the words come out in the byte-level alphabet (a ByteLevel step is present).
  virtual bool byte_level() const = 0;
};

}  // namespace quilt::engine
