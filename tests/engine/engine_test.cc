// Engine behaviour: batch independence, EOS and stop strings, cancellation, refusals.
#include "engine/engine.h"

#include <thread>

#include <gtest/gtest.h>

#include "adapters/peft_adapter.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using testing::Collector;
using testing::source_path;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::create(source_path("examples/models/tiny-llama"), EngineOptions{});
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::move(e).value();
    for (const char* name : {"support-bot", "sql-writer", "legal-rs", "wide-64"}) {
      auto a = adapters::load_peft_adapter_dir(source_path(std::string("examples/adapters/") + name),
                                               engine_->config());
      ASSERT_TRUE(a.ok()) << a.status().to_string();
      adapters_.push_back(*a);
    }
  }

  Request make(uint64_t id, const std::string& text, Collector& c, int max_tokens = 12) {
    Request r;
    r.id = id;
    r.prompt = engine_->tokenizer()->encode(text, true);
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    r.on_event = c.callback();
    return r;
  }

  std::unique_ptr<Engine> engine_;
  std::vector<std::shared_ptr<const LoraWeights>> adapters_;
};

TEST_F(EngineTest, RequestGivesTheSameTokensAloneAndInABusyMixedBatch) {
  auto sampled = [&](uint64_t id, Collector& c) {
    Request r = make(id, "Low-rank adaptation adds", c, 24);
    r.adapter = adapters_[1];
    r.sampling.temperature = 0.9f;
    r.sampling.top_p = 0.95f;
    r.sampling.top_k = 50;
    r.sampling.seed = 1234;
    return r;
  };
  auto greedy = [&](uint64_t id, Collector& c) {
    Request r = make(id, "The quick brown fox", c, 24);
    r.adapter = adapters_[3];
    return r;
  };
  Collector alone;
  ASSERT_TRUE(engine_->submit(sampled(1, alone)).ok());
  ASSERT_TRUE(engine_->submit(greedy(2, alone)).ok());
  ASSERT_TRUE(alone.wait(2));

  Collector busy;
  const char* prompts[] = {"SELECT name FROM", "数据 模型", "def add(a, b):", "emoji 🙂 test"};
  uint64_t id = 100;
  for (int i = 0; i < 24; ++i) {
    Request r = make(id++, prompts[i % 4], busy, 8 + i % 13);
    if (i % 5 != 0) r.adapter = adapters_[i % adapters_.size()];
    if (i % 3 == 0) {
      r.sampling.temperature = 1.0f;
      r.sampling.seed = i;
    }
    ASSERT_TRUE(engine_->submit(std::move(r)).ok());
    if (i == 10) {
      ASSERT_TRUE(engine_->submit(sampled(1, busy)).ok());
      ASSERT_TRUE(engine_->submit(greedy(2, busy)).ok());
    }
  }
  ASSERT_TRUE(busy.wait(26));
  EXPECT_EQ(busy.get(1).tokens, alone.get(1).tokens);
  EXPECT_EQ(busy.get(2).tokens, alone.get(2).tokens);
  EXPECT_EQ(busy.get(1).text, alone.get(1).text);
  EXPECT_EQ(alone.get(1).tokens.size(), 24u);
}

TEST_F(EngineTest, StopsAtEosUnlessIgnoreEos) {
  // The reference continuation of this prompt on the base model has EOS (4) as its 7th token.
  Collector c;
  Request r = make(1, "emoji 🙂 test", c, 16);
  r.sampling.ignore_eos = false;
  ASSERT_TRUE(engine_->submit(std::move(r)).ok());
  ASSERT_TRUE(engine_->submit(make(2, "emoji 🙂 test", c, 16)).ok());
  ASSERT_TRUE(c.wait(2));
  const auto stopped = c.get(1), full = c.get(2);
  ASSERT_EQ(stopped.tokens.size(), 7u);
  EXPECT_EQ(stopped.tokens.back(), 4);
  EXPECT_EQ(stopped.final_event.finish_reason, FinishReason::kStop);
  EXPECT_EQ(stopped.final_event.completion_tokens, 7);
  EXPECT_EQ(full.tokens.size(), 16u);
  EXPECT_EQ(full.final_event.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(std::equal(stopped.tokens.begin(), stopped.tokens.end(), full.tokens.begin()));
}

TEST_F(EngineTest, StopStringCutsTheTextBeforeIt) {
  Collector c;
  ASSERT_TRUE(engine_->submit(make(1, "The quick brown fox", c, 16)).ok());
  ASSERT_TRUE(c.wait(1));
  const std::string full = c.get(1).text;
  ASSERT_GT(full.size(), 8u);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string expected = full.substr(0, full.find(stop));

  Collector c2;
  Request r = make(2, "The quick brown fox", c2, 16);
  r.sampling.stop = {stop};
  ASSERT_TRUE(engine_->submit(std::move(r)).ok());
  ASSERT_TRUE(c2.wait(1));
  EXPECT_EQ(c2.get(2).text, expected);
  EXPECT_EQ(c2.get(2).final_event.finish_reason, FinishReason::kStop);
}

TEST_F(EngineTest, CancelEndsTheRequestAndFreesItsMemory) {
  Collector c;
  std::atomic<int> tokens{0};
  Request r = make(7, "The quick brown fox", c, 400);
  auto collect = r.on_event;
  r.on_event = [&, collect](const TokenEvent& ev) {
    if (ev.token) ++tokens;
    collect(ev);
  };
  ASSERT_TRUE(engine_->submit(std::move(r)).ok());
  while (tokens < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  engine_->cancel(7);
  ASSERT_TRUE(c.wait(1));
  EXPECT_EQ(c.get(7).final_event.finish_reason, FinishReason::kAborted);
  EXPECT_LT(c.get(7).tokens.size(), 400u);
  // The engine thread updates stats after the step; give it a moment to go idle.
  for (int i = 0; i < 100 && engine_->stats().kv_blocks_used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine_->stats().kv_blocks_used, 0);
}

TEST_F(EngineTest, RefusesRequestsThatCanNeverRun) {
  Collector c;
  Request empty = make(1, "x", c);
  empty.prompt.clear();
  EXPECT_TRUE(engine_->submit(std::move(empty)).IsInvalidArgument());

  Request bad_token = make(2, "x", c);
  bad_token.prompt.push_back(100000);
  Status s = engine_->submit(std::move(bad_token));
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("100000"), std::string::npos);

  Request too_long = make(3, "x", c);
  too_long.sampling.max_tokens = 10000;
  s = engine_->submit(std::move(too_long));
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("context"), std::string::npos);

  Request bad_top_p = make(4, "x", c);
  bad_top_p.sampling.top_p = 0.f;
  EXPECT_TRUE(engine_->submit(std::move(bad_top_p)).IsInvalidArgument());

  Request bad_temp = make(5, "x", c);
  bad_temp.sampling.temperature = -1.f;
  EXPECT_TRUE(engine_->submit(std::move(bad_temp)).IsInvalidArgument());

  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(c.get(1).tokens.size() + c.get(2).tokens.size() + c.get(3).tokens.size(), 0u);
  EXPECT_EQ(engine_->stats().steps, 0u);
}

TEST_F(EngineTest, DeadlineEndsTheRequestAndFreesItsMemory) {
  Collector c;
  Request r = make(9, "The quick brown fox", c, 400);
  // Already past when the engine thread takes it: it must end before its first step, whatever
  // the speed of the machine.
  r.deadline = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine_->submit(std::move(r)).ok());
  ASSERT_TRUE(c.wait(1));
  const auto out = c.get(9);
  EXPECT_EQ(out.final_event.finish_reason, FinishReason::kError);
  EXPECT_EQ(out.final_event.error.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(out.tokens.empty());
  for (int i = 0; i < 100 && engine_->stats().kv_blocks_used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine_->stats().kv_blocks_used, 0);
}

// Issue 11: a finished request kept its deadline entry until the deadline passed (600 s by
// default), ~70 bytes per completion, so a busy server grew for ten minutes.
TEST_F(EngineTest, FinishedAndCancelledRequestsKeepNoDeadline) {
  Collector c;
  const auto far = std::chrono::steady_clock::now() + std::chrono::hours(1);
  for (uint64_t id = 20; id < 30; ++id) {
    Request r = make(id, "The quick brown fox", c, 2);
    r.deadline = far;
    ASSERT_TRUE(engine_->submit(std::move(r)).ok());
  }
  Request long_one = make(30, "The quick brown fox", c, 400);
  long_one.deadline = far;
  ASSERT_TRUE(engine_->submit(std::move(long_one)).ok());
  engine_->cancel(30);
  ASSERT_TRUE(c.wait(11));
  for (int i = 0; i < 200 && engine_->stats().deadlines_tracked != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine_->stats().deadlines_tracked, 0u);
}

TEST(EngineBoundsTest, PerTenantAndGlobalQueueBoundsRefuse) {
  EngineOptions o;
  o.max_in_flight_per_tenant = 2;
  o.max_running = 1;
  o.max_waiting = 3;
  Collector c;  // declared first: it must outlive the engine, whose shutdown still calls it
  auto e = Engine::create(source_path("examples/models/tiny-llama"), o);
  ASSERT_TRUE(e.ok());
  Engine& engine = **e;
  uint64_t next = 1;
  auto request = [&](const std::string& tenant) {
    Request r;
    r.id = next++;
    r.prompt = {0, 5, 6, 7};
    r.tenant = tenant;
    r.sampling.max_tokens = 200;
    r.sampling.ignore_eos = true;
    r.on_event = c.callback();
    return r;
  };
  ASSERT_TRUE(engine.submit(request("a")).ok());
  ASSERT_TRUE(engine.submit(request("a")).ok());
  Status third = engine.submit(request("a"));
  EXPECT_EQ(third.code(), StatusCode::kResourceExhausted) << third.to_string();
  // Other tenants fill the global queue until it refuses with 503.
  Status s;
  int accepted = 0;
  for (int i = 0; i < 20 && s.ok(); ++i) {
    s = engine.submit(request("t" + std::to_string(i)));
    if (s.ok()) ++accepted;
  }
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_LE(accepted, 4);
  // Finishing gives the tenant its places back.
  for (uint64_t id = 1; id < next; ++id) engine.cancel(id);
  ASSERT_TRUE(c.wait(2 + accepted));
  EXPECT_TRUE(engine.submit(request("a")).ok());
  engine.cancel(next - 1);
}


// Issue 9, item 3: the adapter of a queued request starts loading while other requests' steps
// run, so its first step only orders itself after the copy.
TEST(EngineAdapterLoadingTest, AdaptersOfQueuedRequestsArePrefetchedBeforeTheirTurn) {
  EngineOptions o;
  o.max_running = 1;  // the adapter request has to wait behind the running one
  auto e = Engine::create(source_path("examples/models/tiny-llama"), o);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  Engine& engine = **e;
  auto adapter = adapters::load_peft_adapter_dir(source_path("examples/adapters/support-bot"),
                                                 engine.config());
  ASSERT_TRUE(adapter.ok()) << adapter.status().to_string();

  Collector c;
  Request running;
  running.id = 1;
  running.prompt = engine.tokenizer()->encode("The quick brown fox", true);
  running.sampling.max_tokens = 400;
  running.sampling.ignore_eos = true;
  running.on_event = c.callback();
  ASSERT_TRUE(engine.submit(std::move(running)).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (c.get(1).tokens.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(c.get(1).tokens.empty());

  Request queued;
  queued.id = 2;
  queued.prompt = engine.tokenizer()->encode("Hello", true);
  queued.sampling.max_tokens = 4;
  queued.sampling.ignore_eos = true;
  queued.adapter = *adapter;
  queued.on_event = c.callback();
  ASSERT_TRUE(engine.submit(std::move(queued)).ok());
  while (engine.stats().adapter_prefetches == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  // The load started while request 2 waited: request 1 still runs, request 2 has had no step.
  EXPECT_EQ(engine.stats().adapter_prefetches, 1u);
  EXPECT_FALSE(c.get(1).finished);
  EXPECT_TRUE(c.get(2).tokens.empty());
  engine.cancel(1);
  ASSERT_TRUE(c.wait(2));
  EXPECT_EQ(c.get(2).final_event.finish_reason, FinishReason::kLength);
  EXPECT_EQ(c.get(2).tokens.size(), 4u);
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.adapter_loads, 1u);  // the prefetch was the one load: admission found it resident
  EXPECT_EQ(s.adapter_prefetches, 1u);
}

// vLLM's rule: one request's adapter failing to load never stalls the other tenants.
TEST_F(EngineTest, AnAdapterThatFailsToLoadFailsOnlyItsRequests) {
  auto broken = std::make_shared<LoraWeights>(*adapters_[0]);
  broken->name = "broken";
  for (auto& layer : broken->layers) {
    for (auto& m : layer) {
      if (m.rank > 0) m.a.resize(m.a.size() / 2);  // passes submit's checks, not the load's
    }
  }
  Collector c;
  Request bad = make(1, "The quick brown fox", c, 6);
  bad.adapter = broken;
  bad.tenant = "a";
  ASSERT_TRUE(engine_->submit(std::move(bad)).ok());
  for (uint64_t id = 2; id <= 4; ++id) {
    Request good = make(id, "The quick brown fox", c, 6);
    if (id != 4) good.adapter = adapters_[id - 1];
    good.tenant = "b";
    ASSERT_TRUE(engine_->submit(std::move(good)).ok());
  }
  ASSERT_TRUE(c.wait(4));
  EXPECT_EQ(c.get(1).final_event.finish_reason, FinishReason::kError);
  EXPECT_EQ(c.get(1).final_event.error.code(), StatusCode::kInvalidArgument);
  for (uint64_t id = 2; id <= 4; ++id) {
    EXPECT_EQ(c.get(id).final_event.finish_reason, FinishReason::kLength) << id;
    EXPECT_EQ(c.get(id).tokens.size(), 6u) << id;
  }
  // Nothing of the broken adapter stays resident (stats lag the final events by a step boundary).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (engine_->stats().running + engine_->stats().waiting > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(engine_->stats().running + engine_->stats().waiting, 0);
  for (const std::string& name : engine_->resident_adapters()) EXPECT_NE(name, "broken");
}

}  // namespace
}  // namespace quilt::engine
