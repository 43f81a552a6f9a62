// Scheduler and layout builder without a model: budgets, admission order, preemption, segments.
#include "engine/scheduler/scheduler.h"

#include <gtest/gtest.h>

#include "engine/backend/cpu/cpu_backend.h"
#include "tests/engine/tiny_model_config.h"
#include "engine/scheduler/layout_builder.h"

namespace quilt::engine {
namespace {

std::shared_ptr<const LoraWeights> adapter(const ModelConfig& cfg, int64_t rank, const std::string& name) {
  auto w = std::make_shared<LoraWeights>();
  w->name = name;
  w->layers.resize(cfg.num_layers);
  LoraModule& q = w->layers[0][static_cast<int>(Projection::kQ)];
  q.rank = rank;
  q.scale = 1.f;
  q.a.assign(rank * cfg.hidden_size, 0.5f);
  q.bt.assign(rank * cfg.q_dim(), 0.25f);
  return w;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void init(int32_t kv_blocks, int32_t budget, int32_t slots = 4) {
    kv_ = std::make_unique<PageAllocator>(kv_blocks);
    LoraPoolShape pool{64, cfg_.hidden_size, slots, 1};
    adapters_ = AdapterSlots::create(backend_, cfg_, pool).value();
    scheduler_ = std::make_unique<Scheduler>(SchedulerConfig{budget, 8, 4}, *kv_, *adapters_);
  }
  Sequence* add(uint64_t id, int32_t prompt_len, std::shared_ptr<const LoraWeights> a = nullptr) {
    Request r;
    r.id = id;
    r.prompt.assign(prompt_len, 1);
    r.adapter = std::move(a);
    auto seq = std::make_unique<Sequence>(std::move(r), nullptr);
    Sequence* raw = seq.get();
    scheduler_->add(std::move(seq));
    return raw;
  }
  // Pretends the model ran: advances computed tokens and appends a sampled token.
  static void finish_step(const StepPlan& plan) {
    for (const auto& item : plan.items) {
      item.seq->num_computed += item.count;
      if (item.samples) item.seq->tokens.push_back(2);
    }
  }

  ModelConfig cfg_ = testing::tiny_model_config();
  CpuBackend backend_;
  std::unique_ptr<PageAllocator> kv_;
  std::unique_ptr<AdapterSlots> adapters_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, ChunkedPrefillRespectsTheTokenBudget) {
  init(64, 10);
  Sequence* a = add(1, 25);
  StepPlan p1 = scheduler_->schedule();
  ASSERT_EQ(p1.items.size(), 1u);
  EXPECT_EQ(p1.items[0].count, 10);
  EXPECT_FALSE(p1.items[0].samples);
  finish_step(p1);
  finish_step(scheduler_->schedule());
  StepPlan p3 = scheduler_->schedule();
  ASSERT_EQ(p3.items.size(), 1u);
  EXPECT_EQ(p3.items[0].count, 5);
  EXPECT_TRUE(p3.items[0].samples);
  finish_step(p3);
  EXPECT_EQ(a->num_computed, 25);
  EXPECT_EQ(a->blocks.size(), 7u);  // 25 tokens in blocks of 4
}

TEST_F(SchedulerTest, DecodesGoFirstAndNewPrefillsFillTheRest) {
  init(64, 8);
  add(1, 3);
  finish_step(scheduler_->schedule());  // 1 prefills fully and samples
  add(2, 20);
  StepPlan p = scheduler_->schedule();
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[0].seq->request.id, 1u);
  EXPECT_EQ(p.items[0].count, 1);
  EXPECT_EQ(p.items[1].seq->request.id, 2u);
  EXPECT_EQ(p.items[1].count, 7);
}

TEST_F(SchedulerTest, AdmissionStopsAtAHeadThatDoesNotFit) {
  init(6, 100);
  add(1, 16);  // 4 blocks
  add(2, 12);  // 3 blocks: does not fit beside 1
  add(3, 2);   // would fit, but must not jump the queue
  StepPlan p = scheduler_->schedule();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].seq->request.id, 1u);
  EXPECT_EQ(scheduler_->num_waiting(), 2);
}

TEST_F(SchedulerTest, OutOfBlocksPreemptsTheNewestByRecompute) {
  init(4, 100);
  add(1, 8);  // 2 blocks
  add(2, 8);  // 2 blocks
  finish_step(scheduler_->schedule());  // both prefilled; each has 9 tokens now and needs a 3rd block
  StepPlan p = scheduler_->schedule();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].seq->request.id, 1u);
  EXPECT_EQ(scheduler_->num_preemptions(), 1u);
  EXPECT_EQ(scheduler_->num_waiting(), 1);
  // The victim lost its cache and will recompute prompt + generated token.
  finish_step(p);
  std::unique_ptr<Sequence> one = scheduler_->remove(1);
  ASSERT_TRUE(one);
  StepPlan q = scheduler_->schedule();
  ASSERT_EQ(q.items.size(), 1u);
  EXPECT_EQ(q.items[0].seq->request.id, 2u);
  EXPECT_EQ(q.items[0].count, 9);
  EXPECT_TRUE(q.items[0].samples);
}

TEST_F(SchedulerTest, LayoutGroupsAdaptersIntoSegmentsAndMarksSamplingRows) {
  init(64, 100);
  auto a = adapter(cfg_, 4, "a"), b = adapter(cfg_, 2, "b");
  add(1, 3, b);
  add(2, 2);
  add(3, 1, a);
  add(4, 2, b);
  StepPlan plan = scheduler_->schedule();
  ASSERT_EQ(plan.items.size(), 4u);
  StepLayout l = build_step_layout(plan, 4, *adapters_);
  EXPECT_EQ(l.num_tokens(), 8);
  // Base first, then each adapter's tokens contiguous.
  // b was acquired first (slot 0), then a (slot 1).
  EXPECT_EQ(l.segment_slots, (std::vector<int32_t>{-1, 0, 1}));
  EXPECT_EQ(l.segment_starts, (std::vector<int32_t>{0, 2, 7, 8}));
  for (int32_t s = 0; s + 1 < static_cast<int32_t>(l.segment_starts.size()); ++s) {
    for (int32_t t = l.segment_starts[s]; t < l.segment_starts[s + 1]; ++t) {
      EXPECT_EQ(l.token_slots[t], l.segment_slots[s]);
    }
  }
  EXPECT_EQ(l.max_rank, 4);
  // Every sequence finished its prompt: one logit row each, at its last token.
  ASSERT_EQ(l.logit_rows.size(), 4u);
  for (size_t i = 0; i < l.sequences.size(); ++i) {
    EXPECT_EQ(l.logit_rows[i], l.sequences[i].q_start + l.sequences[i].q_len - 1);
  }
}

TEST_F(SchedulerTest, AdapterThatCannotLoadWaitsWithoutBlockingTheEngine) {
  init(64, 100, /*slots=*/1);
  auto a = adapter(cfg_, 2, "a"), b = adapter(cfg_, 2, "b");
  add(1, 2, a);
  add(2, 2, b);  // the only slot is taken by a running request
  StepPlan p = scheduler_->schedule();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(scheduler_->num_waiting(), 1);
  scheduler_->remove(1);  // a finishes: its slot becomes idle and evictable
  StepPlan q = scheduler_->schedule();
  ASSERT_EQ(q.items.size(), 1u);
  EXPECT_EQ(q.items[0].seq->request.id, 2u);
  EXPECT_EQ(adapters_->num_evictions(), 1u);
}

}  // namespace
}  // namespace quilt::engine
