// A compiled PCRE2 pattern in UTF + UCP mode, shared read-only between threads.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

class Regex {
 public:
  // `literal` matches the pattern text as is (Hugging Face's {"String": ...} patterns).
  static Result<Regex> compile(std::string_view pattern, bool literal = false);

  // Byte ranges [begin, end) of the successive non-overlapping, non-empty matches in `text`,
  // which must be valid UTF-8. Thread-safe.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // Whether the pattern matches somewhere in `text`. Thread-safe.
  bool search(std::string_view text) const;

 private:
  struct Code;
  explicit Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}

  std::shared_ptr<const Code> code_;  // immutable after compile
};

// The "pattern" field of a Split, Replace normalizer or Replace decoder: {"Regex": ...} or
// {"String": ...} (matched literally); `where` names the object for error messages.
Result<Regex> regex_from_pattern_json(const nlohmann::json& j, const std::string& where);

}  // namespace quilt::engine
