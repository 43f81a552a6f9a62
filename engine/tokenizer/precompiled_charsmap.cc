// Darts-clone lookups over SentencePiece's precompiled charsmap, as spm_precompiled reads it.
#include "engine/tokenizer/precompiled_charsmap.h"

#include <cstring>

#include "engine/tokenizer/unicode_class.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

Result<std::string> decode_base64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const int v = value(c);
    if (v < 0) return Status::InvalidArgument("not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Darts-clone unit fields.
bool has_leaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t value(uint32_t unit) { return unit & ((1u << 31) - 1); }
uint32_t label(uint32_t unit) { return unit & ((1u << 31) | 0xFF); }
uint32_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }

}  // namespace

Result<PrecompiledCharsmap> PrecompiledCharsmap::from_base64(std::string_view base64) {
  QUILT_ASSIGN_OR_RETURN(std::string bytes, decode_base64(base64));
  if (bytes.size() < 4) return Status::InvalidArgument("charsmap too short");
  uint32_t trie_bytes = 0;
  for (int i = 3; i >= 0; --i)
    trie_bytes = (trie_bytes << 8) | static_cast<unsigned char>(bytes[i]);
  if (trie_bytes % 4 != 0 || trie_bytes > bytes.size() - 4) {
    return Status::InvalidArgument("charsmap trie size " + std::to_string(trie_bytes) +
                                   " does not fit its " + std::to_string(bytes.size()) + " bytes");
  }
  PrecompiledCharsmap map;
  map.trie_.resize(trie_bytes / 4);
  for (size_t i = 0; i < map.trie_.size(); ++i) {
    uint32_t u = 0;
    for (int k = 3; k >= 0; --k) u = (u << 8) | static_cast<unsigned char>(bytes[4 + i * 4 + k]);
    map.trie_[i] = u;
  }
  if (map.trie_.empty()) return Status::InvalidArgument("charsmap has an empty trie");
  map.normalized_ = bytes.substr(4 + trie_bytes);
  return map;
}

const char* PrecompiledCharsmap::transform(std::string_view chunk, size_t* length) const {
  size_t node = 0;
  uint32_t unit = trie_[node];
  node ^= offset(unit);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    node ^= c;
    if (node >= trie_.size()) return nullptr;
    unit = trie_[node];
    if (label(unit) != c) return nullptr;
    node ^= offset(unit);
    if (node >= trie_.size()) return nullptr;
    if (has_leaf(unit)) {
      // The first (shortest) match wins, as in spm_precompiled.
      const size_t index = value(trie_[node]);
      if (index >= normalized_.size()) return nullptr;
      const char* start = normalized_.data() + index;
      *length = strnlen(start, normalized_.size() - index);
      return start;
    }
  }
  return nullptr;
}

std::string PrecompiledCharsmap::normalize(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  const std::vector<size_t> starts = grapheme_starts(text);
  for (size_t g = 0; g + 1 < starts.size(); ++g) {
    const std::string_view grapheme = text.substr(starts[g], starts[g + 1] - starts[g]);
    size_t n = 0;
    if (grapheme.size() < 6) {
      if (const char* norm = transform(grapheme, &n)) {
        out.append(norm, n);
        continue;
      }
    }
    size_t pos = 0;
    while (pos < grapheme.size()) {
      uint32_t cp = 0;
      size_t len = utf8_decode(grapheme, pos, &cp);
      if (len == 0) len = 1;
      const std::string_view part = grapheme.substr(pos, len);
      if (const char* norm = transform(part, &n)) {
        out.append(norm, n);
      } else {
        out.append(part);
      }
      pos += len;
    }
  }
  return out;
}

}  // namespace quilt::engine
