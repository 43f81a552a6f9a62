// Test helpers: run requests through a real Engine and collect their events.
#pragma once

#include <chrono>
#include <cmath>
#include <fstream>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/peft_adapter.h"
#include "engine/engine.h"

namespace quilt::testing {

inline std::string source_path(const std::string& rel) { return std::string(QUILT_SOURCE_DIR) + "/" + rel; }

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

inline nlohmann::json load_expected() { return load_json(source_path("tests/data/expected.json")); }

// A Hugging Face reference: a tiny checkpoint, its PEFT adapters and what transformers computed.
// "llama" is examples/ with tests/data/expected.json; every other name is tests/data/models/NAME
// (tests/data/models/README.md).
struct ReferenceFixture {
  std::string name;
  std::string model_dir;
  std::string adapters_dir;  // one folder per adapter, named as expected.json's "adapters"
  std::string expected;      // expected.json
};

inline ReferenceFixture reference_fixture(const std::string& name) {
  if (name == "llama") {
    return {name, source_path("examples/models/tiny-llama"), source_path("examples/adapters"),
            source_path("tests/data/expected.json")};
  }
  const std::string dir = source_path("tests/data/models/" + name);
  return {name, dir + "/model", dir + "/adapters", dir + "/expected.json"};
}

// The adapters expected.json lists, loaded for `model`.
inline Result<std::map<std::string, std::shared_ptr<const engine::LoraWeights>>> load_adapters(
    const ReferenceFixture& f, const nlohmann::json& expected, const engine::ModelConfig& model) {
  std::map<std::string, std::shared_ptr<const engine::LoraWeights>> out;
  for (const auto& name : expected["adapters"]) {
    QUILT_ASSIGN_OR_RETURN(
        out[name.get<std::string>()],
        adapters::load_peft_adapter_dir(f.adapters_dir + "/" + name.get<std::string>(), model));
  }
  return out;
}

// ‖got - ref‖ / ‖ref‖.
inline double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
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

// Reference case `c` as request `id`: its prompt ids and adapter, greedy for as many tokens as
// the reference holds (EOS ignored), first-step logits captured, events to `collector`.
inline engine::Request reference_request(
    const nlohmann::json& c, uint64_t id,
    const std::map<std::string, std::shared_ptr<const engine::LoraWeights>>& adapters,
    Collector& collector) {
  engine::Request r;
  r.id = id;
  r.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  if (!c["adapter"].is_null()) r.adapter = adapters.at(c["adapter"].get<std::string>());
  r.sampling.max_tokens = static_cast<int32_t>(c["greedy_ids"].size());
  r.sampling.ignore_eos = true;
  r.capture_logits = true;
  r.on_event = collector.callback();
  return r;
}

}  // namespace quilt::testing
