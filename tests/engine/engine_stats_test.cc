// What the engine reports for metrics: queue time on token events and the adapters of running and
// waiting requests (vllm:lora_requests_info).
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "adapters/peft_adapter.h"
#include "engine/engine.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using testing::Collector;
using testing::source_path;

TEST(EngineStatsTest, QueueTimeAndTheAdaptersOfRunningAndWaitingRequests) {
  EngineOptions o;
  o.max_running = 1;  // the second request waits behind the first
  auto e = Engine::create(source_path("examples/models/tiny-llama"), o);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  Engine& engine = **e;
  auto loaded = adapters::load_peft_adapter_dir(source_path("examples/adapters/support-bot"),
                                                engine.config());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  // Two adapters under the names the registry gives versions ("name@version").
  auto alpha = std::make_shared<LoraWeights>(**loaded);
  alpha->name = "alpha@2";
  auto beta = std::make_shared<LoraWeights>(**loaded);
  beta->name = "beta@1";

  Collector c;
  std::atomic<double> queue1{-2}, queue2{-2};
  auto first_queue = [&c](std::atomic<double>& out) {
    return [&c, &out, inner = c.callback()](const TokenEvent& ev) {
      if (ev.token && out.load() == -2) out = ev.queue_seconds;
      inner(ev);
    };
  };
  Request running;
  running.id = 1;
  running.prompt = engine.tokenizer()->encode("The quick brown fox", true);
  running.sampling.max_tokens = 400;
  running.sampling.ignore_eos = true;
  running.adapter = alpha;
  running.on_event = first_queue(queue1);
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
  queued.adapter = beta;
  queued.on_event = first_queue(queue2);
  ASSERT_TRUE(engine.submit(std::move(queued)).ok());

  // While the first runs, the second waits: both names show, without their versions.
  bool seen = false;
  while (!seen && !c.get(1).finished && std::chrono::steady_clock::now() < deadline) {
    const EngineStats s = engine.stats();
    seen = s.running_adapters == std::vector<std::string>{"alpha"} &&
           s.waiting_adapters == std::vector<std::string>{"beta"};
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(seen) << "never saw alpha running and beta waiting";

  ASSERT_TRUE(c.wait(2));
  // The first started at once; the second waited for the first's 400 tokens.
  EXPECT_GE(queue1.load(), 0.0);
  EXPECT_GT(queue2.load(), queue1.load());
  // Stats are published after the step whose events ended the requests: soon, not at once.
  EngineStats after = engine.stats();
  for (int i = 0; i < 2000 && !(after.running_adapters.empty() && after.waiting_adapters.empty()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    after = engine.stats();
  }
  EXPECT_TRUE(after.running_adapters.empty());
  EXPECT_TRUE(after.waiting_adapters.empty());
}

}  // namespace
}  // namespace quilt::engine
