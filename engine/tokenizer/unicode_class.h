// Unicode properties and normalization forms the tokenizer pipeline needs, from utf8proc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quilt::engine {

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// `text` (valid UTF-8) in the given normalization form. All functions here are thread-safe.
std::string unicode_normalize(std::string_view text, NormalForm form);

// Rust's char::to_lowercase (full mapping, as Hugging Face's Lowercase uses), appended to `out`.
void append_lowercase(std::string& out, uint32_t cp);

// General category M* (Hugging Face's is_combining_mark, which StripAccents removes).
bool is_combining_mark(uint32_t cp);
// General category P* or an ASCII punctuation character (Hugging Face's is_punctuation).
bool is_punctuation(uint32_t cp);
// Rust's char::is_numeric: categories Nd, Nl, No.
bool is_numeric(uint32_t cp);
// General category Cc, Cf, Cn or Co (Bert's "control" test, tabs and newlines excluded by it).
bool is_other_category(uint32_t cp);

// Byte offsets where the extended grapheme clusters of `text` start, then text.size().
std::vector<size_t> grapheme_starts(std::string_view text);

}  // namespace quilt::engine
