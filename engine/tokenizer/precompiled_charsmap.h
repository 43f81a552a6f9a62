// SentencePiece's precompiled normalization map (a Darts double-array trie of replacements).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

class PrecompiledCharsmap {
 public:
  // Parses the base64 "precompiled_charsmap" of a Precompiled normalizer.
  static Result<PrecompiledCharsmap> from_base64(std::string_view base64);

  // Rewrites `text` as spm_precompiled does in Hugging Face: each grapheme cluster shorter than
  // 6 bytes is looked up whole, otherwise (or when absent) each of its characters is. Thread-safe.
  std::string normalize(std::string_view text) const;

 private:
  // The replacement of the shortest key that prefixes `chunk`, or nullptr.
  const char* transform(std::string_view chunk, size_t* length) const;

  std::vector<uint32_t> trie_;
  std::string normalized_;  // NUL-separated replacement strings
};

}  // namespace quilt::engine
