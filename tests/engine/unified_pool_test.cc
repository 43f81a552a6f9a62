// One allocator for KV blocks and adapter pages (S-LoRA's unified paging), without a model: the
// scheduler's KV growth takes blocks from idle adapters (those no queued request wants first,
// least recently used first) before it preempts anyone, and a sequence alone that fills the
// whole pool ends instead of waiting forever.
#include <gtest/gtest.h>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/scheduler/scheduler.h"
#include "tests/engine/tiny_model_config.h"

namespace quilt::engine {
namespace {

// Rank 4 on q of the one-layer tiny config: A and Bᵀ are 4 * 8 elements each, two pages of 16
// (block_size 4 * kv_dim 4) each: four pages, two blocks of the pool (2 pages a block).
std::shared_ptr<const LoraWeights> adapter(const ModelConfig& cfg, const std::string& name) {
  auto w = std::make_shared<LoraWeights>();
  w->name = name;
  w->layers.resize(cfg.num_layers);
  LoraModule& q = w->layers[0][static_cast<int>(Projection::kQ)];
  q.rank = 4;
  q.scale = 1.f;
  q.a.assign(4 * cfg.hidden_size, 0.5f);
  q.bt.assign(4 * cfg.q_dim(), 0.25f);
  return w;
}

class UnifiedPoolTest : public ::testing::Test {
 protected:
  static constexpr int32_t kBlocks = 8;
  static constexpr int32_t kBlockSize = 4;

  void SetUp() override {
    KvCacheShape kv{1, kBlocks, kBlockSize, 1, 4};
    ASSERT_TRUE(backend_.init_kv_cache(kv).ok());
    units_ = std::make_unique<PageAllocator>(kBlocks);
    LoraPoolShape pool;
    pool.page_elems = kBlockSize * cfg_.kv_dim();  // the K (or V) of one block of one layer
    pool.num_pages = kBlocks * 2;
    pool.max_slots = 4;
    pool.num_layers = 1;
    pool.in_kv_cache = true;
    auto slots = AdapterSlots::create(backend_, cfg_, pool, /*async_loads=*/false, {units_.get(), 2});
    ASSERT_TRUE(slots.ok()) << slots.status().to_string();
    adapters_ = std::move(slots).value();
    // One running sequence at a time: a second one waits, its adapter "wanted".
    scheduler_ = std::make_unique<Scheduler>(SchedulerConfig{64, 1, kBlockSize}, *units_, *adapters_);
  }
  void add(uint64_t id, int32_t prompt_len, std::shared_ptr<const LoraWeights> a = nullptr) {
    Request r;
    r.id = id;
    r.prompt.assign(prompt_len, 1);
    r.adapter = std::move(a);
    scheduler_->add(std::make_unique<Sequence>(std::move(r), nullptr));
  }
  static void finish_step(const StepPlan& plan) {
    for (const auto& item : plan.items) {
      item.seq->num_computed += item.count;
      if (item.samples) item.seq->tokens.push_back(2);
    }
  }
  // Runs request `id` (prompt 3, with adapter a) for one step and removes it: a resident, idle
  // adapter is left behind.
  void use_once(uint64_t id, const std::shared_ptr<const LoraWeights>& a) {
    add(id, 3, a);
    StepPlan plan = scheduler_->schedule();
    ASSERT_EQ(plan.items.size(), 1u);
    finish_step(plan);
    ASSERT_NE(scheduler_->remove(id), nullptr);
  }

  ModelConfig cfg_ = testing::tiny_model_config();
  CpuBackend backend_;
  std::unique_ptr<PageAllocator> units_;
  std::unique_ptr<AdapterSlots> adapters_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(UnifiedPoolTest, AdaptersAndKvTradeBlocksWithNoFixedSplit) {
  auto a = adapter(cfg_, "a"), b = adapter(cfg_, "b"), c = adapter(cfg_, "c");
  ASSERT_EQ(adapters_->units_needed(*a), 2);
  use_once(1, a);
  use_once(2, b);
  use_once(3, c);
  // Three idle adapters hold 6 of the 8 blocks; least recently used: a, b, c.
  EXPECT_EQ(adapters_->units_in_use(), 6);
  EXPECT_EQ(units_->num_free(), 2);

  add(10, 4);     // base model, grows one block every 4 tokens
  add(11, 3, b);  // waits behind the running limit: b is wanted
  std::vector<std::vector<bool>> resident;  // [a, b, c] each time the long sequence grew
  int32_t last_blocks = 0;
  bool ended = false;
  for (int step = 0; step < 64 && !ended; ++step) {
    StepPlan plan = scheduler_->schedule();
    if (!plan.out_of_memory.empty()) {
      ASSERT_EQ(plan.out_of_memory.size(), 1u);
      EXPECT_EQ(plan.out_of_memory[0]->request.id, 10u);
      EXPECT_EQ(plan.out_of_memory[0]->num_tokens(), kBlocks * kBlockSize + 1);
      ended = true;
    }
    if (!ended) {
      const Sequence* seq = plan.items.at(0).seq;
      ASSERT_EQ(seq->request.id, 10u);
      const auto blocks = static_cast<int32_t>(seq->blocks.size());
      if (blocks != last_blocks) {
        resident.push_back({adapters_->is_resident(a.get()), adapters_->is_resident(b.get()),
                            adapters_->is_resident(c.get())});
        last_blocks = blocks;
      }
      // Never more than the pool: what adapters hold and what KV holds add up to it at most.
      EXPECT_LE(adapters_->units_in_use() + blocks, kBlocks);
    }
    finish_step(plan);
  }
  ASSERT_TRUE(ended);
  // Blocks 1-2 came from free room; 3 from a (idle, unwanted, least recent); 5 from c (b is
  // wanted by the waiting request); 7 from b (no idle room left but a wanted adapter's: a
  // running sequence's KV comes before a queued request's adapter); 8 was the last.
  ASSERT_EQ(resident.size(), 8u);
  const std::vector<std::vector<bool>> expected = {
      {true, true, true},  {true, true, true},   {false, true, true},  {false, true, true},
      {false, true, false}, {false, true, false}, {false, false, false}, {false, false, false}};
  EXPECT_EQ(resident, expected);
  EXPECT_EQ(scheduler_->num_preemptions(), 0u);  // idle adapters paid, nobody was preempted
  EXPECT_EQ(scheduler_->num_out_of_memory(), 1u);

  // Its blocks came back, and the waiting request was admitted in the same step: b loaded
  // again, into blocks KV just held (b's two and the new sequence's one are all that is used).
  EXPECT_EQ(units_->num_used(), 3);
  EXPECT_TRUE(adapters_->is_resident(b.get()));
  EXPECT_EQ(adapters_->units_in_use(), 2);
  StepPlan plan = scheduler_->schedule();
  ASSERT_EQ(plan.items.size(), 1u);
  EXPECT_EQ(plan.items[0].seq->request.id, 11u);
}

TEST_F(UnifiedPoolTest, AdapterPagesAreTheKvCachesPages) {
  auto a = adapter(cfg_, "a");
  use_once(1, a);
  // Page j of block u is j * blocks + u: the K (j = 0) and V (j = 1) of block u in the one layer.
  // The adapter's two blocks are two blocks the KV allocator no longer hands out.
  EXPECT_EQ(units_->num_used(), 2);
  std::vector<int32_t> kv;
  ASSERT_TRUE(units_->allocate(kBlocks - 2, kv));
  EXPECT_FALSE(units_->allocate(1, kv));
  units_->free(kv);
}

TEST_F(UnifiedPoolTest, PrefetchLeavesTheRunningSequencesBlocksFree) {
  auto a = adapter(cfg_, "a"), b = adapter(cfg_, "b");
  std::vector<int32_t> kv;
  ASSERT_TRUE(units_->allocate(5, kv));  // 3 free
  const auto nobody = [](const LoraWeights*) { return false; };
  // a needs 2: with 2 blocks kept for running sequences' growth, it would leave only 1.
  Result<bool> started = adapters_->prefetch(a, nobody, /*keep_free=*/2);
  ASSERT_TRUE(started.ok());
  EXPECT_FALSE(*started);
  EXPECT_EQ(units_->num_free(), 3);
  started = adapters_->prefetch(b, nobody, /*keep_free=*/1);
  ASSERT_TRUE(started.ok());
  EXPECT_TRUE(*started);
  EXPECT_EQ(units_->num_free(), 1);
  units_->free(kv);
}

TEST_F(UnifiedPoolTest, ASequenceWithOthersRunningIsPreemptedNotEnded) {
  // Two sequences, no adapters: when the pool is full the newest gives way (recompute), and
  // nothing ends for lack of memory while another sequence could give blocks back.
  scheduler_ = std::make_unique<Scheduler>(SchedulerConfig{64, 4, kBlockSize}, *units_, *adapters_);
  add(1, 8);
  add(2, 8);
  uint64_t ended = 0;
  for (int step = 0; step < 40; ++step) {
    StepPlan plan = scheduler_->schedule();
    ended += plan.out_of_memory.size();
    if (scheduler_->num_preemptions() > 0) break;
    finish_step(plan);
  }
  EXPECT_GT(scheduler_->num_preemptions(), 0u);
  EXPECT_EQ(ended, 0u);
}

}  // namespace
}  // namespace quilt::engine
