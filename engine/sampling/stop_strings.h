// Finds stop strings in streamed text, holding back any tail that could still become one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace quilt::engine {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  // Takes newly decoded text and returns what may be emitted now. Once a stop string appears,
  // the text before it is returned, matched() turns true and everything after is dropped.
  std::string push(std::string_view text);
  // The held-back tail, at the end of generation (empty after a match).
  std::string finish();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // text not yet emitted: a suffix that is a prefix of some stop string
  bool matched_ = false;
};

}  // namespace quilt::engine
