// Hugging Face's split behaviors over matched / unmatched spans; private to the tokenizer folder.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/regex.h"

namespace quilt::engine {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

// Every byte of `text` in order, as matched and unmatched spans (tokenizers' find_matches).
std::vector<Span> regex_spans(const Regex& regex, std::string_view text);

// Each character for which pred(code point) holds is a match of its own.
template <typename Pred>
std::vector<Span> char_spans(std::string_view text, Pred&& pred);

// Applies a behavior; in the result is_match only marks what kRemoved drops.
std::vector<Span> apply_behavior(std::vector<Span> spans, SplitBehavior behavior);

// Splits every piece by `find(text)`'s spans under `behavior` (after inverting the spans when
// `invert`); sub-pieces that begin a piece at the input's start keep at_start.
template <typename Find>
void split_pieces(std::vector<PreToken>& pieces, Find&& find, SplitBehavior behavior,
                  bool invert = false) {
  std::vector<PreToken> out;
  out.reserve(pieces.size() * 2);
  for (PreToken& piece : pieces) {
    std::vector<Span> spans = find(std::string_view(piece.text));
    if (invert) {
      for (Span& s : spans) s.is_match = !s.is_match;
    }
    for (const Span& s : apply_behavior(std::move(spans), behavior)) {
      if (behavior == SplitBehavior::kRemoved && s.is_match) continue;
      if (s.end > s.begin) {
        out.push_back(
            {piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
      }
    }
  }
  pieces = std::move(out);
}

}  // namespace quilt::engine

#include "engine/tokenizer/utf8.h"

namespace quilt::engine {

template <typename Pred>
std::vector<Span> char_spans(std::string_view text, Pred&& pred) {
  std::vector<Span> spans;
  size_t last = 0, pos = 0;
  while (pos < text.size()) {
    uint32_t cp = kReplacementChar;
    size_t n = utf8_decode(text, pos, &cp);
    if (n == 0) n = 1;
    if (pred(cp)) {
      if (last < pos) spans.push_back({last, pos, false});
      spans.push_back({pos, pos + n, true});
      last = pos + n;
    }
    pos += n;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

}  // namespace quilt::engine

namespace quilt::engine {

// The character-class pre-tokenizers (pre_tokenizer_chars.cc): Whitespace, WhitespaceSplit,
// Punctuation, Digits, BertPreTokenizer, CharDelimiterSplit, FixedLength; nullptr for any other
// type.
Result<std::unique_ptr<PreTokenizer>> char_pre_tokenizer_from_json(const nlohmann::json& j,
                                                                   const std::string& type,
                                                                   const std::string& where);
Result<SplitBehavior> split_behavior_from_json(const nlohmann::json& j, const std::string& where,
                                               SplitBehavior fallback);

}  // namespace quilt::engine
