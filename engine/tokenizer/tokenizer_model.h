// The "model" of tokenizer.json: turns one pre-tokenized word into ids (BPE, WordPiece, Unigram).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

// Hash and equality that let unordered maps keyed by std::string be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Constant after from_json(); every method is thread-safe.
class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;

  // Parses the "model" object by its "type" (BPE when absent): BPE, WordPiece or Unigram; any
  // other type is refused with Unimplemented naming `where`.type and the value.
  static Result<std::unique_ptr<TokenizerModel>> from_json(const nlohmann::json& model,
                                                           const std::string& where);

  // Appends the ids of one pre-tokenized word.
  virtual void encode_word(std::string_view word, std::vector<int32_t>* out) const = 0;

  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // The vocabulary entry of `id`, or nullptr when the model has none.
  virtual const std::string* id_to_token(int32_t id) const = 0;
  virtual int32_t max_id() const = 0;
};

}  // namespace quilt::engine
