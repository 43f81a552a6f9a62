// UTF-8 helpers shared by the tokenizer and the chat-template interpreter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quilt::engine {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Appends the UTF-8 encoding of `cp` (which must be a valid scalar value).
void utf8_append(std::string& out, uint32_t cp);

// Decodes the well-formed sequence at s[pos]; returns its length, or 0 when the bytes there are not
// a complete well-formed sequence (then *cp is left unchanged).
size_t utf8_decode(std::string_view s, size_t pos, uint32_t* cp);

bool utf8_is_valid(std::string_view s);

// Replaces each maximal ill-formed subsequence with U+FFFD, exactly as Rust's
// String::from_utf8_lossy (and so Hugging Face's decoders) do.
std::string utf8_lossy(std::string_view bytes);

// Length of the prefix of `bytes` that can be decoded now: everything except a trailing sequence
// that is a valid but incomplete start of a character, which more bytes could still complete.
size_t utf8_complete_prefix(std::string_view bytes);

// Code points of valid UTF-8 text; ill-formed bytes become U+FFFD.
std::vector<uint32_t> utf8_to_code_points(std::string_view s);
std::string code_points_to_utf8(const std::vector<uint32_t>& cps, size_t begin, size_t end);
size_t utf8_length(std::string_view s);

// Unicode White_Space (Rust's char::is_whitespace).
bool is_unicode_whitespace(uint32_t cp);
// Python's str.isspace(), which also counts U+001C..U+001F.
bool is_python_space(uint32_t cp);

}  // namespace quilt::engine
