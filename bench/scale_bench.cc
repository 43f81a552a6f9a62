// Scale: 2,000 adapters with random weights (ranks 4 to 64) deployed through the registry for the
// demo model; 20 tenants send requests over all of them with Zipf popularity on one engine.
// Checks that everything completes, that memory stays bounded (LoRA pool, host cache, RSS),
// and that a sample's greedy outputs equal the same requests run alone.
//
// usage: scale_bench [--adapters 2000] [--requests 4000] [--zipf 1.0] [--slots 64]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include "adapters/registry.h"
#include "app/demo_model.h"
#include "engine/engine.h"
#include "engine/model/lora_weights.h"
#include "storage/database.h"
#include "tests/engine/safetensors_writer.h"

using namespace quilt;
using Clock = std::chrono::steady_clock;

namespace {

const char* kModules[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// A random PEFT adapter: config text and safetensors bytes.
std::pair<std::string, std::string> random_adapter(const engine::ModelConfig& cfg, std::mt19937_64& rng) {
  const int64_t rank = 4 + static_cast<int64_t>(rng() % 61);
  std::vector<std::string> targets;
  for (const char* m : kModules) {
    if (rng() % 2) targets.push_back(m);
  }
  if (targets.empty()) targets.push_back("q_proj");
  nlohmann::json config = {{"peft_type", "LORA"}, {"r", rank}, {"lora_alpha", 2 * rank},
                           {"target_modules", targets}, {"bias", "none"}, {"use_rslora", false}};
  std::normal_distribution<float> a_dist(0.f, 0.15f), b_dist(0.f, 0.25f);
  std::vector<testing::TestTensor> tensors;
  for (int64_t layer = 0; layer < cfg.num_layers; ++layer) {
    for (const std::string& t : targets) {
      int p = 0;
      while (engine::projection_name(static_cast<engine::Projection>(p)) != t) ++p;
      const auto proj = static_cast<engine::Projection>(p);
      const int64_t in = engine::projection_in_dim(cfg, proj), out = engine::projection_out_dim(cfg, proj);
      const std::string base = "base_model.model.model.layers." + std::to_string(layer) +
                               (p < 4 ? ".self_attn." : ".mlp.") + t;
      std::vector<float> a(rank * in), b(out * rank);
      for (float& v : a) v = a_dist(rng);
      for (float& v : b) v = b_dist(rng);
      tensors.push_back({base + ".lora_A.weight", "BF16", {rank, in}, a});
      tensors.push_back({base + ".lora_B.weight", "BF16", {out, rank}, b});
    }
  }
  return {config.dump(), testing::make_safetensors(tensors)};
}

long peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  int adapters = 2000, requests = 4000, slots = 64;
  double zipf = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--adapters") adapters = std::stoi(v);
    else if (k == "--requests") requests = std::stoi(v);
    else if (k == "--zipf") zipf = std::stod(v);
    else if (k == "--slots") slots = std::stoi(v);
  }
  testing::ScratchDir scratch;
  auto cfg = engine::load_model_config(app::demo_model_dir());
  auto db = storage::Database::open(scratch.path() / "db");
  if (!cfg.ok() || !db.ok()) return std::fprintf(stderr, "setup failed\n"), 1;
  const int64_t host_cache = 32ll << 20;
  auto registry = adapters::AdapterRegistry::open(**db, *cfg, host_cache);
  engine::EngineOptions eo;
  eo.max_adapter_slots = slots;
  eo.lora_pool_bytes = 16ll << 20;
  eo.kv_cache_bytes = 32ll << 20;
  auto eng = engine::Engine::create(app::demo_model_dir(), eo);
  if (!registry.ok() || !eng.ok()) return std::fprintf(stderr, "setup failed\n"), 1;

  // Deploy, as uploads do: validate against the model, persist, make live.
  std::mt19937_64 rng(2024);
  const std::string owner = "t_00000000000000aa";
  const auto deploy_start = Clock::now();
  int64_t stored_bytes = 0;
  for (int i = 0; i < adapters; ++i) {
    auto [config, weights] = random_adapter(*cfg, rng);
    const auto file = scratch.path() / "upload.safetensors";
    std::ofstream(file, std::ios::binary) << weights;
    auto v = (*registry)->deploy("a" + std::to_string(i), owner, /*shared=*/true, config, file);
    if (!v.ok()) return std::fprintf(stderr, "deploy %d: %s\n", i, v.status().to_string().c_str()), 1;
    stored_bytes += v->bytes;
  }
  const double deploy_s = std::chrono::duration<double>(Clock::now() - deploy_start).count();

  // Zipf popularity over the adapters; 20 tenants.
  std::vector<double> cdf(adapters);
  double total = 0;
  for (int i = 0; i < adapters; ++i) cdf[i] = (total += 1.0 / std::pow(i + 1, zipf));
  std::uniform_real_distribution<double> u(0, total);
  struct Sent {
    std::string adapter;
    std::vector<int32_t> prompt;
    std::vector<int32_t> tokens;
    bool done = false;
  };
  std::vector<Sent> sent(requests);
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  std::map<std::string, bool> used;
  const auto run_start = Clock::now();
  for (int i = 0; i < requests; ++i) {
    const int a = static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    const std::string tenant = "tenant-" + std::to_string(i % 20);
    auto resolved = (*registry)->resolve("a" + std::to_string(a), tenant);
    if (!resolved.ok()) return std::fprintf(stderr, "resolve: %s\n", resolved.status().to_string().c_str()), 1;
    used[resolved->name] = true;
    engine::Request r;
    r.id = static_cast<uint64_t>(i);
    r.tenant = tenant;
    r.adapter = resolved->weights;
    r.prompt = {0};
    for (int k = 0; k < 8; ++k) r.prompt.push_back(5 + static_cast<int32_t>(rng() % 500));
    r.sampling.max_tokens = 8;
    r.sampling.temperature = 0;
    r.sampling.ignore_eos = true;
    sent[i].adapter = resolved->name;
    sent[i].prompt = r.prompt;
    r.on_event = [&, i](const engine::TokenEvent& ev) {
      std::lock_guard lock(mu);
      if (ev.token) sent[i].tokens.push_back(*ev.token);
      if (ev.finished) {
        sent[i].done = ev.finish_reason == engine::FinishReason::kLength;
        ++finished;
        cv.notify_all();
      }
    };
    // The queue bounds push back on a client this fast: wait for room and retry.
    for (;;) {
      Status st = (*eng)->submit(std::move(r));
      if (st.ok()) break;
      if (st.code() != StatusCode::kUnavailable && st.code() != StatusCode::kResourceExhausted) {
        return std::fprintf(stderr, "submit: %s\n", st.to_string().c_str()), 1;
      }
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(5));
    }
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == requests; });
  }
  const double run_s = std::chrono::duration<double>(Clock::now() - run_start).count();
  const engine::EngineStats stats = (*eng)->stats();
  int completed = 0;
  for (const Sent& s : sent) completed += s.done ? 1 : 0;

  // A sample, each run alone afterwards, must give the same tokens.
  int sample_equal = 0, sample = 0;
  for (int i = 0; i < requests; i += requests / 50) {
    auto resolved = (*registry)->resolve(sent[i].adapter, "tenant-0");
    std::vector<int32_t> alone;
    bool done = false;
    engine::Request r;
    r.id = 1000000 + static_cast<uint64_t>(i);
    r.adapter = resolved->weights;
    r.prompt = sent[i].prompt;
    r.sampling.max_tokens = 8;
    r.sampling.temperature = 0;
    r.sampling.ignore_eos = true;
    r.on_event = [&](const engine::TokenEvent& ev) {
      std::lock_guard lock(mu);
      if (ev.token) alone.push_back(*ev.token);
      if (ev.finished) {
        done = true;
        cv.notify_all();
      }
    };
    (void)(*eng)->submit(std::move(r));
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    ++sample;
    sample_equal += alone == sent[i].tokens ? 1 : 0;
  }

  std::printf("| adapters | distinct used | requests | completed | deploy s | run s | tokens/s | adapter loads | evictions | "
              "device slots | LoRA pool MiB | host cache MiB | stored MiB | peak RSS MiB | sample equal alone |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %d | %zu | %d | %d | %.1f | %.1f | %.0f | %llu | %llu | %d | %lld | %lld | %.1f | %ld | %d/%d |\n", adapters,
              used.size(), requests, completed, deploy_s, run_s, requests * 8 / run_s,
              static_cast<unsigned long long>(stats.adapter_loads),
              static_cast<unsigned long long>(stats.adapter_evictions), slots,
              static_cast<long long>(eo.lora_pool_bytes >> 20), static_cast<long long>(host_cache >> 20),
              stored_bytes / 1048576.0, peak_rss_mb(), sample_equal, sample);
  return completed == requests && sample_equal == sample ? 0 : 1;
}
