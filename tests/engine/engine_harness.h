// Test helpers: run requests through a real Engine and collect their events.
#pragma once

#include <chrono>
#include <fstream>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"

namespace quilt::testing {

inline std::string source_path(const std::string& rel) { return std::string(QUILT_SOURCE_DIR) + "/" + rel; }

inline nlohmann::json load_expected() {
  std::ifstream in(source_path("tests/data/expected.json"));
  return nlohmann::json::parse(in);
}

// What one request produced.
struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<float> first_logits;
  engine::TokenEvent final_event;
  bool finished = false;
};

// Collects events of many requests; wait() blocks until all submitted requests finished.
class Collector {
 public:
  engine::EventCallback callback() {
    return [this](const engine::TokenEvent& ev) {
      std::lock_guard lock(mu_);
      Outcome& o = outcomes_[ev.request_id];
      if (ev.token) o.tokens.push_back(*ev.token);
      o.text += ev.text;
      if (!ev.logits.empty()) o.first_logits = ev.logits;
      if (ev.finished) {
        o.finished = true;
        o.final_event = ev;
        ++finished_;
        cv_.notify_all();
      }
    };
  }
  // False on timeout.
  bool wait(size_t count, std::chrono::seconds timeout = std::chrono::seconds(120)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return finished_ >= count; });
  }
  Outcome get(uint64_t id) {
    std::lock_guard lock(mu_);
    return outcomes_[id];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Outcome> outcomes_;
  size_t finished_ = 0;
};

}  // namespace quilt::testing
