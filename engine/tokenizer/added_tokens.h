// Added (and special) tokens: found in the raw text before pre-tokenization, never split by BPE.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/regex.h"

namespace quilt::engine {

class Normalizer;

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;       // swallow whitespace on its left
  bool rstrip = false;       // swallow whitespace on its right
  bool single_word = false;  // match only when not inside a word
  bool normalized = false;   // matched in the normalized text, in its normalized form
};

// A piece of the input: an added token's id, or text to pre-tokenize (id == -1).
struct TextSegment {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `normalizer` (may be null) gives the form in which normalized tokens are looked for; it is
  // only used here.
  AddedTokenMatcher(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Like Hugging Face, non-normalized tokens are cut out of the raw text first (split_raw), then
  // normalized ones out of each remaining piece once normalized (split_normalized); each pass
  // takes the leftmost, then longest match. Empty text segments are dropped; segments view
  // `text`. Thread-safe.
  std::vector<TextSegment> split_raw(std::string_view text) const;
  void split_normalized(std::string_view text, std::vector<TextSegment>* out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Pass {
    // Candidate tokens (indices into tokens_) by first byte, longest first.
    std::array<std::vector<size_t>, 256> by_first_byte;
    bool empty = true;
  };
  void split_pass(const Pass& pass, std::string_view text, std::vector<TextSegment>* out) const;
  bool word_boundary_ok(std::string_view text, size_t begin, size_t end) const;

  // Constant after construction.
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;  // by token: content, normalized when the token is
  Pass raw_pass_, normalized_pass_;
  std::optional<Regex> starts_with_word_, ends_with_word_;  // only when a token is single_word
};

}  // namespace quilt::engine
