// The one paged pool on the cuda backend (issue 9, item 2): KV blocks and adapter pages come out
// of one device allocation, the KV cache's, and the engine's allocator lends blocks to adapters
// and takes them back for a long context, with no fixed split. Results equal each request run
// alone; in the simulator an adapter page that KV overwrote, or KV written into an adapter's
// pages, would change them.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <thread>

#include "adapters/peft_adapter.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using quilt::testing::Collector;
using quilt::testing::Outcome;
using quilt::testing::source_path;

// Tiny-llama in 16 bits: K and V of 16 tokens in 2 layers of kv_dim 32 are 4 KiB; a page (the K
// or V of one block of one layer) 1 KiB, four to a block.
constexpr int64_t kBlockBytes = 4 << 10;

struct Job {
  const char* prompt;
  int32_t max_tokens;
  int adapter;  // -1: base model
};

class UnifiedPoolCudaTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> make_engine(const EngineOptions& o) {
    auto e = Engine::create(source_path("examples/models/tiny-llama"), o);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    if (!e.ok()) return nullptr;
    if (adapters_.empty()) {
      for (const char* name : {"sql-writer", "support-bot"}) {
        auto a = adapters::load_peft_adapter_dir(source_path(std::string("examples/adapters/") + name),
                                                 (*e)->config());
        EXPECT_TRUE(a.ok()) << a.status().to_string();
        if (a.ok()) adapters_.push_back(*a);
      }
    }
    return std::move(e).value();
  }
  Request make(const Engine& e, uint64_t id, const Job& job, Collector& c) {
    Request r;
    r.id = id;
    r.prompt = e.tokenizer()->encode(job.prompt, true);
    r.sampling.max_tokens = job.max_tokens;
    r.sampling.ignore_eos = true;
    if (job.adapter >= 0) r.adapter = adapters_.at(job.adapter);
    r.on_event = c.callback();
    return r;
  }
  static EngineOptions cuda(int64_t pool_blocks) {
    EngineOptions o;
    o.device = "cuda";
    o.kv_cache_bytes = pool_blocks / 2 * kBlockBytes;
    o.lora_pool_bytes = (pool_blocks - pool_blocks / 2) * kBlockBytes;
    o.max_lora_rank = 16;  // the pool must hold one all-module adapter of this rank (19 blocks)
    return o;
  }
  static void settle(const Engine& e) {
    for (int i = 0; i < 400 && e.stats().running + e.stats().waiting != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  std::vector<std::shared_ptr<const LoraWeights>> adapters_;
};

TEST_F(UnifiedPoolCudaTest, AdaptersAndALongContextTradeOnePool) {
  // 24 blocks: sql-writer (rank 16 on every module: 19 blocks) and support-bot (rank 8 on q and
  // v: 2) resident and idle leave 3; the long request needs 12 (~190 tokens), so KV takes
  // sql-writer's blocks; then sql-writer loads again into blocks the long context held.
  const std::vector<Job> jobs = {
      {"SELECT name FROM", 6, 0}, {"How do I reset my password?", 6, 1}, {"A long story:", 186, -1}};
  std::vector<Outcome> ref;
  {
    std::unique_ptr<Engine> roomy = make_engine(cuda(256));
    ASSERT_NE(roomy, nullptr);
    for (size_t i = 0; i < jobs.size(); ++i) {
      Collector c;
      ASSERT_TRUE(roomy->submit(make(*roomy, i + 1, jobs[i], c)).ok());
      ASSERT_TRUE(c.wait(1, std::chrono::seconds(300)));
      ref.push_back(c.get(i + 1));
      EXPECT_EQ(ref.back().tokens.size(), static_cast<size_t>(jobs[i].max_tokens));
    }
  }

  std::unique_ptr<Engine> e = make_engine(cuda(24));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->memory_plan().pages_per_block, 4);
  EXPECT_EQ(e->memory_plan().page_elems, 16 * 32);
  EXPECT_EQ(e->stats().kv_blocks_total, 24);
  Collector c;
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(e->submit(make(*e, i + 1, jobs[i], c)).ok());
    ASSERT_TRUE(c.wait(i + 1, std::chrono::seconds(300)));
    EXPECT_EQ(c.get(i + 1).tokens, ref[i].tokens) << i;
  }
  settle(*e);
  EngineStats s = e->stats();
  EXPECT_EQ(s.adapters_resident, 2);
  EXPECT_EQ(s.adapter_blocks, 21);  // of 24: more than any fixed adapter share would be

  ASSERT_TRUE(e->submit(make(*e, 3, jobs[2], c)).ok());
  ASSERT_TRUE(c.wait(3, std::chrono::seconds(300)));
  EXPECT_EQ(c.get(3).tokens, ref[2].tokens);
  EXPECT_EQ(c.get(3).final_event.completion_tokens, 186);
  settle(*e);
  s = e->stats();
  EXPECT_GE(s.adapter_evictions, 1u);  // sql-writer gave its blocks to the long context
  EXPECT_EQ(s.preemptions, 0u);
  EXPECT_EQ(s.out_of_memory_finishes, 0u);

  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(e->submit(make(*e, 10 + i, jobs[i], c)).ok());
    ASSERT_TRUE(c.wait(4 + i, std::chrono::seconds(300)));
    EXPECT_EQ(c.get(10 + i).tokens, ref[i].tokens) << "again " << i;
  }
  EXPECT_GE(e->stats().adapter_loads, 3u);
}

TEST_F(UnifiedPoolCudaTest, GpuMemoryFractionSizesThePoolFromTheDevice) {
  size_t free_before = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);
  // A share of the device 64 MiB above what is in use now: what the weights and activations
  // take (~34 MiB in the simulator, cuBLAS's workspace included) comes out of it, the pool gets
  // the rest.
  const int64_t used_before = static_cast<int64_t>(total - free_before);
  EngineOptions o;
  o.device = "cuda";
  o.max_lora_rank = 16;
  o.gpu_memory_fraction = static_cast<double>(used_before + (64 << 20)) / static_cast<double>(total);
  std::unique_ptr<Engine> e = make_engine(o);
  ASSERT_NE(e, nullptr);
  const MemoryPlan& plan = e->memory_plan();
  EXPECT_GT(plan.pool_bytes, 0);
  EXPECT_LE(plan.pool_bytes, 64 << 20);
  size_t free_after = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_after, &total), cudaSuccess);
  EXPECT_LE(static_cast<int64_t>(total - free_after), static_cast<int64_t>(o.gpu_memory_fraction * total) + (1 << 20));
  Collector c;
  ASSERT_TRUE(e->submit(make(*e, 1, {"SELECT name FROM", 4, 0}, c)).ok());
  ASSERT_TRUE(c.wait(1, std::chrono::seconds(300)));
  EXPECT_EQ(c.get(1).tokens.size(), 4u);

  // A share that does not even hold the model is a start error naming the flag.
  o.gpu_memory_fraction = 1e-6;  // a few KiB of the device
  auto bad = Engine::create(source_path("examples/models/tiny-llama"), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--gpu-memory-fraction"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace quilt::engine
