// Normalizers from tokenizer.json: rewrite text before pre-tokenization.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace quilt::engine {

class Normalizer {
 public:
  virtual ~Normalizer() = default;

  // Parses the "normalizer" object; `where` names the file and field for error messages.
  // Supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace (String or
  // Regex pattern), Nmt, ByteLevel, BertNormalizer, Precompiled, Sequence. Others are refused
  // with Unimplemented naming `where`, the field and the type.
  static Result<std::unique_ptr<Normalizer>> from_json(const nlohmann::json& j,
                                                       const std::string& where);

  // Rewrites `text` (valid UTF-8, kept valid). Thread-safe.
  virtual void normalize(std::string& text) const = 0;
};

}  // namespace quilt::engine
