// Pre-tokenizers that split on character classes: Whitespace, WhitespaceSplit, Punctuation,
// Digits, BertPreTokenizer, CharDelimiterSplit, FixedLength.
#include <functional>
#include <utility>

#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/split_rules.h"
#include "engine/tokenizer/unicode_class.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

// Oniguruma's Unicode \w (letters, marks, decimal digits, connector punctuation), which
// Hugging Face's Whitespace pattern \w+|[^\w\s]+ means; PCRE2's \w omits the marks.
constexpr std::string_view kWhitespacePattern =
    R"([\p{L}\p{M}\p{Nd}\p{Pc}]+|[^\p{L}\p{M}\p{Nd}\p{Pc}\s]+)";

// Keeps the pattern's matches and drops the text between them.
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  explicit WhitespacePreTokenizer(Regex regex) : regex_(std::move(regex)) {}
  void split(std::vector<PreToken>& pieces) const override {
    split_pieces(
        pieces, [&](std::string_view text) { return regex_spans(regex_, text); },
        SplitBehavior::kRemoved, /*invert=*/true);
  }

 private:
  Regex regex_;
};

// Splits on each character for which the predicate holds.
class CharClassPreTokenizer final : public PreTokenizer {
 public:
  CharClassPreTokenizer(std::function<bool(uint32_t)> pred, SplitBehavior behavior)
      : pred_(std::move(pred)), behavior_(behavior) {}
  void split(std::vector<PreToken>& pieces) const override {
    split_pieces(
        pieces, [&](std::string_view text) { return char_spans(text, pred_); }, behavior_);
  }

 private:
  std::function<bool(uint32_t)> pred_;
  SplitBehavior behavior_;
};

class BertPreTokenizer final : public PreTokenizer {
 public:
  void split(std::vector<PreToken>& pieces) const override {
    split_pieces(
        pieces, [](std::string_view text) { return char_spans(text, is_unicode_whitespace); },
        SplitBehavior::kRemoved);
    split_pieces(
        pieces, [](std::string_view text) { return char_spans(text, is_punctuation); },
        SplitBehavior::kIsolated);
  }
};

class FixedLengthPreTokenizer final : public PreTokenizer {
 public:
  explicit FixedLengthPreTokenizer(size_t length) : length_(length) {}
  void split(std::vector<PreToken>& pieces) const override {
    split_pieces(
        pieces,
        [&](std::string_view text) {
          std::vector<Span> spans;
          size_t begin = 0, pos = 0, chars = 0;
          while (pos < text.size()) {
            uint32_t cp = 0;
            size_t n = utf8_decode(text, pos, &cp);
            pos += n == 0 ? 1 : n;
            if (++chars == length_) {
              spans.push_back({begin, pos, false});
              begin = pos;
              chars = 0;
            }
          }
          if (begin < text.size()) spans.push_back({begin, text.size(), false});
          return spans;
        },
        SplitBehavior::kIsolated);
  }

 private:
  size_t length_;
};

}  // namespace

Result<std::unique_ptr<PreTokenizer>> char_pre_tokenizer_from_json(const nlohmann::json& j,
                                                                   const std::string& type,
                                                                   const std::string& where) {
  if (type == "Whitespace") {
    QUILT_ASSIGN_OR_RETURN(Regex regex, Regex::compile(kWhitespacePattern));
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<WhitespacePreTokenizer>(std::move(regex)));
  }
  if (type == "WhitespaceSplit") {
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<CharClassPreTokenizer>(is_unicode_whitespace, SplitBehavior::kRemoved));
  }
  if (type == "Punctuation") {
    QUILT_ASSIGN_OR_RETURN(SplitBehavior behavior,
                           split_behavior_from_json(j, where, SplitBehavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<CharClassPreTokenizer>(is_punctuation, behavior));
  }
  if (type == "Digits") {
    auto it = j.find("individual_digits");
    const bool individual = it != j.end() && it->is_boolean() && it->get<bool>();
    return std::unique_ptr<PreTokenizer>(std::make_unique<CharClassPreTokenizer>(
        is_numeric, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous));
  }
  if (type == "BertPreTokenizer") {
    return std::unique_ptr<PreTokenizer>(std::make_unique<BertPreTokenizer>());
  }
  if (type == "CharDelimiterSplit") {
    auto d = j.find("delimiter");
    if (d == j.end() || !d->is_string() || utf8_length(d->get<std::string>()) != 1) {
      return Status::InvalidArgument(where + ".delimiter: expected one character");
    }
    const std::vector<uint32_t> cps = utf8_to_code_points(d->get<std::string>());
    const uint32_t delimiter = cps[0];
    return std::unique_ptr<PreTokenizer>(std::make_unique<CharClassPreTokenizer>(
        [delimiter](uint32_t cp) { return cp == delimiter; }, SplitBehavior::kRemoved));
  }
  if (type == "FixedLength") {
    auto l = j.find("length");
    size_t length = 5;
    if (l != j.end() && !l->is_null()) {
      if (!l->is_number_unsigned() || l->get<size_t>() == 0) {
        return Status::InvalidArgument(where + ".length: expected a positive integer");
      }
      length = l->get<size_t>();
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<FixedLengthPreTokenizer>(length));
  }
  return std::unique_ptr<PreTokenizer>();
}

}  // namespace quilt::engine
