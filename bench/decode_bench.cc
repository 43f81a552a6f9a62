// Decode throughput of the engine: N concurrent requests, tokens/s once every prefill is done.
//
// usage: decode_bench [--model DIR] [--device cpu] [--batch 1,16] [--prompt 16] [--new 128]
//                     [--adapter DIR] [--repeat 3]
// Prints one markdown table row per batch size.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/peft_adapter.h"
#include "engine/engine.h"

#include "app/demo_model.h"

using namespace quilt;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string model = app::demo_model_dir().string();
  std::string device = "cpu";
  std::string adapter;
  std::vector<int> batches = {1, 16};
  int prompt = 16;
  int new_tokens = 128;
  int repeat = 3;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

// Seconds from the moment every request has its first token until every request finished.
double run_batch(engine::Engine& e, const Args& a, int batch,
                 const std::shared_ptr<const engine::LoraWeights>& adapter, uint64_t& next_id) {
  std::mutex mu;
  std::condition_variable cv;
  int first_seen = 0, finished = 0;
  Clock::time_point decode_start, end;
  for (int i = 0; i < batch; ++i) {
    engine::Request r;
    r.id = next_id++;
    for (int t = 0; t < a.prompt; ++t) r.prompt.push_back(5 + (t * 7 + i * 13) % 400);
    r.adapter = adapter;
    r.sampling.max_tokens = a.new_tokens;
    r.sampling.ignore_eos = true;
    r.on_event = [&, seen = false](const engine::TokenEvent& ev) mutable {
      std::lock_guard lock(mu);
      if (!seen && ev.token) {
        seen = true;
        if (++first_seen == batch) decode_start = Clock::now();
      }
      if (ev.finished && ++finished == batch) {
        end = Clock::now();
        cv.notify_all();
      }
    };
    if (Status s = e.submit(std::move(r)); !s.ok()) {
      std::fprintf(stderr, "submit: %s\n", s.to_string().c_str());
      std::exit(1);
    }
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished == batch; });
  return std::chrono::duration<double>(end - decode_start).count();
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") a.model = v;
    else if (k == "--device") a.device = v;
    else if (k == "--adapter") a.adapter = v;
    else if (k == "--batch") a.batches = parse_list(v);
    else if (k == "--prompt") a.prompt = std::stoi(v);
    else if (k == "--new") a.new_tokens = std::stoi(v);
    else if (k == "--repeat") a.repeat = std::stoi(v);
    else { std::fprintf(stderr, "unknown flag %s\n", k.c_str()); return 2; }
  }
  engine::EngineOptions opt;
  opt.device = a.device;
  auto eng = engine::Engine::create(a.model, opt);
  if (!eng.ok()) { std::fprintf(stderr, "%s\n", eng.status().to_string().c_str()); return 1; }
  std::shared_ptr<const engine::LoraWeights> adapter;
  if (!a.adapter.empty()) {
    auto w = adapters::load_peft_adapter_dir(a.adapter, (*eng)->config());
    if (!w.ok()) { std::fprintf(stderr, "%s\n", w.status().to_string().c_str()); return 1; }
    adapter = *w;
  }
  uint64_t next_id = 1;
  run_batch(**eng, a, 1, adapter, next_id);  // warm-up
  std::printf("| batch | prompt | new tokens | adapter | decode tokens/s (best of %d) | ms/step |\n", a.repeat);
  std::printf("|---|---|---|---|---|---|\n");
  for (int batch : a.batches) {
    double best = 1e30;
    for (int r = 0; r < a.repeat; ++r) best = std::min(best, run_batch(**eng, a, batch, adapter, next_id));
    const double tokens = static_cast<double>(batch) * (a.new_tokens - 1);
    std::printf("| %d | %d | %d | %s | %.0f | %.3f |\n", batch, a.prompt, a.new_tokens,
                a.adapter.empty() ? "none" : a.adapter.c_str(), tokens / best,
                best * 1e3 / (a.new_tokens - 1));
  }
  return 0;
}
