// Decode steps through CUDA graphs (engine/backend/cuda/decode_graphs.h): replayed steps give the
// tokens that op-by-op steps give, with adapters of different ranks changing from step to step
// (requests finish at different lengths, so the batch shrinks through several padded sizes and
// the LoRA layout changes under one graph), and a graph is captured once and then replayed. The
// simulator records a captured stream's work and reruns it at each cudaGraphLaunch with the
// arguments it was captured with, as a GPU does: metadata baked into a launch would give other
// tokens here.
#include <gtest/gtest.h>

#include "adapters/peft_adapter.h"
#include "engine/backend/cuda/decode_graphs.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using quilt::testing::Collector;
using quilt::testing::source_path;

struct RunResult {
  std::map<uint64_t, std::vector<int32_t>> tokens;
  EngineStats stats;
};

// Six requests at once: two on the base model, four on adapters of ranks 4, 8, 16 and 64, with
// prompts of different lengths and 9 to 40 new tokens (so sequences cross KV block boundaries
// and leave the batch one after another: 6 tokens pad to 8, then 4, 2, 1).
RunResult run_requests(bool graphs, int max_running = 8) {
  EngineOptions o;
  o.device = "cuda";
  o.kv_cache_bytes = 8 << 20;
  o.lora_pool_bytes = 2 << 20;
  o.max_running = max_running;
  o.decode_graphs = graphs;
  RunResult result;
  auto created = Engine::create(source_path("examples/models/tiny-llama"), o);
  EXPECT_TRUE(created.ok()) << created.status().to_string();
  if (!created.ok()) return result;
  Engine& engine = **created;
  std::map<std::string, std::shared_ptr<const LoraWeights>> adapters;
  for (const char* name : {"legal-rs", "support-bot", "sql-writer", "wide-64"}) {
    auto a = adapters::load_peft_adapter_dir(source_path(std::string("examples/adapters/") + name),
                                             engine.config());
    EXPECT_TRUE(a.ok()) << a.status().to_string();
    if (!a.ok()) return result;
    adapters[name] = *a;
  }
  struct Spec {
    const char* prompt;
    const char* adapter;
    int max_tokens;
  };
  const std::vector<Spec> specs = {
      {"The quick brown fox", nullptr, 40},
      {"Low-rank adaptation adds a small update", "legal-rs", 9},
      {"SELECT name FROM users WHERE", "sql-writer", 23},
      {"Hello", "support-bot", 31},
      {"A long time ago in a galaxy far, far away", "wide-64", 17},
      {"Once upon a time", nullptr, 12},
  };
  Collector c;
  for (size_t i = 0; i < specs.size(); ++i) {
    Request r;
    r.id = i + 1;
    r.prompt = engine.tokenizer()->encode(specs[i].prompt, true);
    r.sampling.max_tokens = specs[i].max_tokens;
    r.sampling.ignore_eos = true;
    if (specs[i].adapter != nullptr) r.adapter = adapters.at(specs[i].adapter);
    r.on_event = c.callback();
    EXPECT_TRUE(engine.submit(std::move(r)).ok());
  }
  EXPECT_TRUE(c.wait(specs.size()));
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto outcome = c.get(i + 1);
    EXPECT_EQ(outcome.final_event.finish_reason, FinishReason::kLength)
        << "request " << i + 1 << ": " << outcome.final_event.error.to_string();
    EXPECT_EQ(outcome.tokens.size(), static_cast<size_t>(specs[i].max_tokens));
    result.tokens[i + 1] = outcome.tokens;
  }
  result.stats = engine.stats();
  return result;
}

TEST(DecodeGraphsCuda, ReplayedStepsGiveTheTokensOfOpByOpSteps) {
  const RunResult eager = run_requests(false);
  const RunResult graphs = run_requests(true);
  ASSERT_EQ(eager.tokens.size(), 6u);
  for (const auto& [id, tokens] : eager.tokens) {
    EXPECT_EQ(graphs.tokens.at(id), tokens) << "request " << id;
  }
  // Sizes 8, 4, 2 and 1 (each with the rank of the adapters left): a handful of captures, and
  // most of the ~40 decode steps replayed.
  EXPECT_GE(graphs.stats.graph_captures, 3u);
  EXPECT_LE(graphs.stats.graph_captures, 8u);
  EXPECT_GE(graphs.stats.graph_replays, 25u);
  EXPECT_GT(graphs.stats.graph_replays, 3 * graphs.stats.graph_captures);
}

// Three sequences (padded to 4) whose prompts have one length: at every step they sit at the
// same position, so at positions 15 and 31 (the last slot of a 16-token block) none has a free
// slot for the padding row, and those steps run op by op, with the same tokens.
TEST(DecodeGraphsCuda, StepsWithNoSlotForPaddingRunOpByOp) {
  auto run_three = [](bool graphs) {
    EngineOptions o;
    o.device = "cuda";
    o.kv_cache_bytes = 8 << 20;
    o.lora_pool_bytes = 2 << 20;
    o.decode_graphs = graphs;
    RunResult result;
    auto created = Engine::create(source_path("examples/models/tiny-llama"), o);
    EXPECT_TRUE(created.ok()) << created.status().to_string();
    if (!created.ok()) return result;
    Collector c;
    for (uint64_t id = 1; id <= 3; ++id) {
      Request r;
      r.id = id;
      for (int t = 0; t < 13; ++t)
        r.prompt.push_back(static_cast<int32_t>(3 + (t * 11 + id * 29) % 400));
      r.sampling.max_tokens = 22;
      r.sampling.ignore_eos = true;
      r.on_event = c.callback();
      EXPECT_TRUE((*created)->submit(std::move(r)).ok());
    }
    EXPECT_TRUE(c.wait(3));
    for (uint64_t id = 1; id <= 3; ++id) result.tokens[id] = c.get(id).tokens;
    result.stats = (*created)->stats();
    return result;
  };
  const RunResult eager = run_three(false);
  const RunResult graphs = run_three(true);
  for (const auto& [id, tokens] : eager.tokens) {
    EXPECT_EQ(tokens.size(), 22u);
    EXPECT_EQ(graphs.tokens.at(id), tokens) << "request " << id;
  }
  // Decode steps write positions 13 .. 33 (the prefill's token is the first of 22): 15 and 31
  // have no padding slot.
  EXPECT_EQ(graphs.stats.graph_fallbacks, 2u);
  EXPECT_EQ(graphs.stats.graph_captures, 1u);
  EXPECT_GE(graphs.stats.graph_replays, 17u);
}

TEST(DecodeGraphsCuda, OffRunsEveryStepOpByOp) {
  const RunResult eager = run_requests(false);
  EXPECT_EQ(eager.stats.graph_captures, 0u);
  EXPECT_EQ(eager.stats.graph_replays, 0u);
}

TEST(DecodeGraphsCuda, PaddedSizesArePowersOfTwo) {
  EXPECT_EQ(cuda::DecodeGraphs::padded_size(1), 1);
  EXPECT_EQ(cuda::DecodeGraphs::padded_size(3), 4);
  EXPECT_EQ(cuda::DecodeGraphs::padded_size(32), 32);
  EXPECT_EQ(cuda::DecodeGraphs::padded_size(33), 64);
}

}  // namespace
}  // namespace quilt::engine
