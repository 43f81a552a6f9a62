// Sequence / Split / ByteLevel pre-tokenizers with the splitting rules of Hugging Face tokenizers.
#include "engine/tokenizer/pre_tokenizer.h"

#include <utility>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/regex.h"

namespace quilt::engine {
namespace {

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

// Every byte of `text` in order, as matched and unmatched spans (tokenizers' find_matches).
std::vector<Span> spans_of(const Regex& regex, std::string_view text) {
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

// Applies a split behavior to spans; the result's is_match is meaningless except for kRemoved.
std::vector<Span> apply_behavior(std::vector<Span> spans, Behavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      return spans;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case Behavior::kContiguous:
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

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    out.reserve(pieces.size() * 2);
    for (const std::string& piece : pieces) {
      std::vector<Span> spans = spans_of(regex_, piece);
      if (invert_) {
        for (Span& s : spans) s.is_match = !s.is_match;
      }
      for (const Span& s : apply_behavior(std::move(spans), behavior_)) {
        if (s.end > s.begin) out.emplace_back(piece, s.begin, s.end - s.begin);
      }
    }
    pieces = std::move(out);
  }
  bool byte_level() const override { return false; }

 private:
  Regex regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    out.reserve(pieces.size());
    for (std::string& piece : pieces) {
      if (add_prefix_space_ && (piece.empty() || piece.front() != ' ')) piece.insert(0, " ");
      if (!regex_) {
        if (!piece.empty()) out.push_back(bytes_to_byte_level(piece));
        continue;
      }
      for (const Span& s : spans_of(*regex_, piece)) {
        out.push_back(
            bytes_to_byte_level(std::string_view(piece).substr(s.begin, s.end - s.begin)));
      }
    }
    pieces = std::move(out);
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}

  void split(std::vector<std::string>& pieces) const override {
    for (const auto& step : steps_) step->split(pieces);
  }
  bool byte_level() const override {
    for (const auto& step : steps_) {
      if (step->byte_level()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

bool bool_field(const nlohmann::json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

Result<std::unique_ptr<PreTokenizer>> parse_split(const nlohmann::json& j,
                                                  const std::string& where) {
  auto pattern = j.find("pattern");
  if (pattern == j.end() || !pattern->is_object()) {
    return Status::InvalidArgument(where +
                                   ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
  }
  std::optional<Regex> regex;
  if (auto r = pattern->find("Regex"); r != pattern->end() && r->is_string()) {
    auto compiled = Regex::compile(r->get<std::string>());
    if (!compiled.ok()) return compiled.status().with_context(where + ".pattern.Regex");
    regex = std::move(compiled).value();
  } else if (auto s = pattern->find("String"); s != pattern->end() && s->is_string()) {
    auto compiled = Regex::compile(s->get<std::string>(), /*literal=*/true);
    if (!compiled.ok()) return compiled.status().with_context(where + ".pattern.String");
    regex = std::move(compiled).value();
  } else {
    return Status::InvalidArgument(where +
                                   ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
  }
  const std::string behavior = j.value("behavior", std::string("Isolated"));
  Behavior b;
  if (behavior == "Removed") {
    b = Behavior::kRemoved;
  } else if (behavior == "Isolated") {
    b = Behavior::kIsolated;
  } else if (behavior == "MergedWithPrevious") {
    b = Behavior::kMergedWithPrevious;
  } else if (behavior == "MergedWithNext") {
    b = Behavior::kMergedWithNext;
  } else if (behavior == "Contiguous") {
    b = Behavior::kContiguous;
  } else {
    return Status::Unimplemented(where + ".behavior: unsupported split behavior \"" + behavior +
                                 "\"");
  }
  return std::unique_ptr<PreTokenizer>(
      std::make_unique<SplitPreTokenizer>(std::move(*regex), b, bool_field(j, "invert", false)));
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
  if (type == "Split") return parse_split(j, where);
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
  return Status::Unimplemented(where + ".type: unsupported pre-tokenizer \"" + type + "\"");
}

}  // namespace quilt::engine
