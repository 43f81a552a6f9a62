// Sequence / Split / ByteLevel / Metaspace pre-tokenizers with the rules of Hugging Face
// tokenizers.
#include "engine/tokenizer/pre_tokenizer.h"

#include <optional>
#include <utility>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/split_rules.h"

namespace quilt::engine {

std::vector<Span> regex_spans(const Regex& regex, std::string_view text) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [begin, end] : regex.find_all(text)) {
    if (begin != prev) spans.push_back({prev, begin, false});
    spans.push_back({begin, end, true});
    prev = end;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

std::vector<Span> apply_behavior(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
  }
  return spans;
}

Result<SplitBehavior> split_behavior_from_json(const nlohmann::json& j, const std::string& where,
                                               SplitBehavior fallback) {
  auto it = j.find("behavior");
  if (it == j.end() || it->is_null()) return fallback;
  const std::string behavior = it->is_string() ? it->get<std::string>() : it->dump();
  if (behavior == "Removed") return SplitBehavior::kRemoved;
  if (behavior == "Isolated") return SplitBehavior::kIsolated;
  if (behavior == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (behavior == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (behavior == "Contiguous") return SplitBehavior::kContiguous;
  return Status::Unimplemented(where + ".behavior: unsupported split behavior \"" + behavior +
                               "\"");
}

namespace {

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr std::string_view kMetaspaceReplacement = "\xE2\x96\x81";  // "▁"

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  void split(std::vector<PreToken>& pieces) const override {
    split_pieces(
        pieces, [&](std::string_view text) { return regex_spans(regex_, text); }, behavior_,
        invert_);
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  void split(std::vector<PreToken>& pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& piece : pieces) {
        if (piece.text.empty() || piece.text.front() != ' ') piece.text.insert(0, " ");
      }
    }
    if (regex_) {
      split_pieces(
          pieces, [&](std::string_view text) { return regex_spans(*regex_, text); },
          SplitBehavior::kIsolated);
    }
    for (PreToken& piece : pieces) piece.text = bytes_to_byte_level(piece.text);
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void split(std::vector<PreToken>& pieces) const override {
    for (PreToken& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size());
      for (char c : piece.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      const bool prepend =
          scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_start);
      if (prepend && replaced.compare(0, replacement_.size(), replacement_) != 0) {
        replaced.insert(0, replacement_);
      }
      piece.text = std::move(replaced);
    }
    if (!split_) return;
    split_pieces(
        pieces,
        [&](std::string_view text) {
          std::vector<Span> spans;
          size_t last = 0;
          for (size_t pos = text.find(replacement_); pos != std::string_view::npos;
               pos = text.find(replacement_, pos + replacement_.size())) {
            if (last < pos) spans.push_back({last, pos, false});
            spans.push_back({pos, pos + replacement_.size(), true});
            last = pos + replacement_.size();
          }
          if (last < text.size()) spans.push_back({last, text.size(), false});
          return spans;
        },
        SplitBehavior::kMergedWithNext);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}

  void split(std::vector<PreToken>& pieces) const override {
    for (const auto& step : steps_) step->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

bool bool_field(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

Result<std::unique_ptr<PreTokenizer>> parse_metaspace(const nlohmann::json& j,
                                                      const std::string& where) {
  std::string replacement(kMetaspaceReplacement);
  if (auto r = j.find("replacement"); r != j.end() && !r->is_null()) {
    if (!r->is_string() || utf8_length(r->get<std::string>()) != 1) {
      return Status::InvalidArgument(where + ".replacement: expected one character");
    }
    replacement = r->get<std::string>();
  }
  PrependScheme scheme = PrependScheme::kAlways;
  if (auto p = j.find("prepend_scheme"); p != j.end() && !p->is_null()) {
    const std::string s = p->is_string() ? p->get<std::string>() : p->dump();
    if (s == "first") {
      scheme = PrependScheme::kFirst;
    } else if (s == "always") {
      scheme = PrependScheme::kAlways;
    } else if (s == "never") {
      scheme = PrependScheme::kNever;
    } else {
      return Status::Unimplemented(where + ".prepend_scheme: unsupported value \"" + s + "\"");
    }
  } else if (!bool_field(j, "add_prefix_space", true)) {
    scheme = PrependScheme::kNever;  // the format before prepend_scheme existed
  }
  return std::unique_ptr<PreTokenizer>(std::make_unique<MetaspacePreTokenizer>(
      std::move(replacement), scheme, bool_field(j, "split", true)));
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::from_json(const nlohmann::json& j,
                                                              const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::InvalidArgument(where + ": expected an object with a \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto list = j.find("pretokenizers");
    if (list == j.end() || !list->is_array()) {
      return Status::InvalidArgument(where + ".pretokenizers: expected an array");
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list->size(); ++i) {
      QUILT_ASSIGN_OR_RETURN(
          auto step, from_json((*list)[i], where + ".pretokenizers[" + std::to_string(i) + "]"));
      steps.push_back(std::move(step));
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<SequencePreTokenizer>(std::move(steps)));
  }
  if (type == "Split") {
    QUILT_ASSIGN_OR_RETURN(Regex regex, regex_from_pattern_json(j, where));
    QUILT_ASSIGN_OR_RETURN(SplitBehavior behavior,
                           split_behavior_from_json(j, where, SplitBehavior::kIsolated));
    return std::unique_ptr<PreTokenizer>(std::make_unique<SplitPreTokenizer>(
        std::move(regex), behavior, bool_field(j, "invert", false)));
  }
  if (type == "ByteLevel") {
    std::optional<Regex> regex;
    if (bool_field(j, "use_regex", true)) {
      auto compiled = Regex::compile(kGpt2Pattern);
      if (!compiled.ok()) return compiled.status().with_context(where);
      regex = std::move(compiled).value();
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<ByteLevelPreTokenizer>(
        bool_field(j, "add_prefix_space", true), std::move(regex)));
  }
  if (type == "Metaspace") return parse_metaspace(j, where);
  QUILT_ASSIGN_OR_RETURN(auto simple, char_pre_tokenizer_from_json(j, type, where));
  if (simple) return simple;
  return Status::Unimplemented(where + ".type: unsupported pre-tokenizer \"" + type + "\"");
}

}  // namespace quilt::engine
