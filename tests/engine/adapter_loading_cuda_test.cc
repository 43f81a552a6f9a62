// Adapter loading off the critical path on the cuda backend (issue 9, item 3): loads on a copy
// stream of their own from a pinned ring, one copy per run of pages, prefetched while other
// requests' steps run, and the compute stream ordered after them. In the simulator a created
// stream's work runs only when something waits for it, so a missing cudaStreamWaitEvent leaves
// the adapter's pages unwritten (zeros) when its step reads them: the results below change.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "adapters/peft_adapter.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using quilt::testing::Collector;
using quilt::testing::Outcome;
using quilt::testing::source_path;

double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return got.size() == ref.size() ? std::sqrt(diff / norm) : INFINITY;
}

struct WorkloadRun {
  std::map<uint64_t, Outcome> outcomes;
  EngineStats stats;
  bool prefetched_while_queued = false;
};

// Two requests run (base and legal-rs, whose load is started and read in the same step) while
// four more wait behind the running limit, three with adapters of their own; those four are
// submitted once the first two have produced a token.
WorkloadRun run_workload(bool async_loads) {
  EngineOptions o;
  o.device = "cuda";
  o.kv_cache_bytes = 8 << 20;
  o.lora_pool_bytes = 1 << 20;
  o.max_running = 2;
  o.async_adapter_loads = async_loads;
  WorkloadRun run;
  auto created = Engine::create(source_path("examples/models/tiny-llama"), o);
  EXPECT_TRUE(created.ok()) << created.status().to_string();
  if (!created.ok()) return run;
  Engine& engine = **created;
  std::map<std::string, std::shared_ptr<const LoraWeights>> adapters;
  for (const char* name : {"support-bot", "sql-writer", "legal-rs", "wide-64"}) {
    auto a = adapters::load_peft_adapter_dir(source_path(std::string("examples/adapters/") + name),
                                             engine.config());
    EXPECT_TRUE(a.ok()) << a.status().to_string();
    if (!a.ok()) return run;
    adapters[name] = *a;
  }
  Collector c;
  auto request = [&](uint64_t id, const char* text, const char* adapter, int max_tokens) {
    Request r;
    r.id = id;
    r.prompt = engine.tokenizer()->encode(text, true);
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    r.capture_logits = true;
    if (adapter != nullptr) r.adapter = adapters.at(adapter);
    r.on_event = c.callback();
    return r;
  };
  EXPECT_TRUE(engine.submit(request(1, "The quick brown fox", nullptr, 10)).ok());
  EXPECT_TRUE(engine.submit(request(2, "Low-rank adaptation adds", "legal-rs", 10)).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while ((c.get(1).tokens.empty() || c.get(2).tokens.empty()) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const uint64_t prefetches_before = engine.stats().adapter_prefetches;
  EXPECT_TRUE(engine.submit(request(3, "SELECT name FROM", "sql-writer", 6)).ok());
  EXPECT_TRUE(engine.submit(request(4, "def add(a, b):", "support-bot", 6)).ok());
  EXPECT_TRUE(engine.submit(request(5, "emoji test", "wide-64", 6)).ok());
  EXPECT_TRUE(engine.submit(request(6, "SELECT name FROM", nullptr, 6)).ok());  // 3's base
  if (async_loads) {
    // (c) The queued requests' adapters start loading while requests 1 and 2 still run, before
    // any step of theirs.
    while (engine.stats().adapter_prefetches == prefetches_before &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    run.prefetched_while_queued = engine.stats().adapter_prefetches > prefetches_before &&
                                  !c.get(1).finished && c.get(3).tokens.empty() &&
                                  c.get(4).tokens.empty() && c.get(5).tokens.empty();
  }
  EXPECT_TRUE(c.wait(6));
  for (uint64_t id = 1; id <= 6; ++id) run.outcomes[id] = c.get(id);
  run.stats = engine.stats();
  return run;
}

TEST(AdapterLoadingCudaTest, AsynchronousLoadsGiveWhatSynchronousLoadsGive) {
  const WorkloadRun sync_run = run_workload(/*async_loads=*/false);
  const WorkloadRun async_run = run_workload(/*async_loads=*/true);
  ASSERT_EQ(sync_run.outcomes.size(), 6u);
  ASSERT_EQ(async_run.outcomes.size(), 6u);
  // (a) Same tokens and the same first-step logits as loads the host waited for.
  for (uint64_t id = 1; id <= 6; ++id) {
    const Outcome& s = sync_run.outcomes.at(id);
    const Outcome& a = async_run.outcomes.at(id);
    EXPECT_EQ(a.final_event.finish_reason, FinishReason::kLength) << id;
    EXPECT_EQ(a.tokens, s.tokens) << id;
    EXPECT_LT(relative_error(a.first_logits, s.first_logits), 1e-5) << id;
  }
  // The adapter matters to these logits (request 6 is request 3's prompt on the base model): a
  // step that read unwritten pages could not pass above.
  EXPECT_GT(relative_error(sync_run.outcomes.at(6).first_logits,
                           sync_run.outcomes.at(3).first_logits),
            1e-2);
  // (b) Each adapter's first step ordered the compute stream after its load (stream-side: the
  // engine thread never waited); the synchronous path never needed to.
  EXPECT_GE(async_run.stats.adapter_load_waits, 4u);
  EXPECT_EQ(sync_run.stats.adapter_load_waits, 0u);
  // (c) Loads began while their requests were queued, before their first step.
  EXPECT_TRUE(async_run.prefetched_while_queued);
  EXPECT_GE(async_run.stats.adapter_prefetches, 3u);
  EXPECT_EQ(sync_run.stats.adapter_loads, async_run.stats.adapter_loads);
}

// The backend alone: one copy per run of consecutive pages, an id to wait on, and the staging ring
// reused (after its copies completed) when loads outgrow it.
TEST(AdapterLoadingCudaTest, OneCopyPerRunOfPagesAndTheRingIsReused) {
  auto b = make_backend("cuda", DType::kF16);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  auto* cuda = dynamic_cast<cuda::CudaBackend*>(b->get());
  ASSERT_NE(cuda, nullptr);
  LoraPoolShape shape;
  shape.num_pages = 16;
  shape.page_elems = 64;
  shape.max_slots = 2;
  shape.num_layers = 1;
  ASSERT_TRUE(cuda->init_lora_pool(shape).ok());  // ring: the pool's 2 KiB, chunks of 8 pages

  const std::vector<int32_t> pages = {3, 4, 5, 9, 10, 0};  // runs: 3-5, 9-10, 0
  std::vector<float> data(pages.size() * 64, 0.5f);
  auto id = cuda->start_lora_load(pages, data);
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  EXPECT_NE(*id, 0u);
  EXPECT_EQ(cuda->lora_load_stats().copies, 3u);
  EXPECT_EQ(cuda->lora_load_stats().staging_waits, 0u);
  ASSERT_TRUE(cuda->wait_lora_load(*id).ok());
  ASSERT_TRUE(cuda->wait_lora_load(*id).ok());  // a second wait does nothing
  EXPECT_EQ(cuda->lora_load_stats().stream_waits, 1u);

  // Sixteen pages: two chunks of eight, the second past the ring's end: it wraps to the start,
  // reusing the first load's staging once that copy completed.
  std::vector<int32_t> all(16);
  for (int32_t i = 0; i < 16; ++i) all[i] = i;
  std::vector<float> more(all.size() * 64, 0.25f);
  auto id2 = cuda->start_lora_load(all, more);
  ASSERT_TRUE(id2.ok()) << id2.status().to_string();
  EXPECT_EQ(cuda->lora_load_stats().copies, 5u);
  ASSERT_TRUE(cuda->wait_lora_load(*id2).ok());
  EXPECT_EQ(cuda->lora_load_stats().loads, 2u);
}

}  // namespace
}  // namespace quilt::engine
