// Metrics on prometheus-cpp: the text exposition of counters, gauges, histograms, and clear().
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace quilt {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(MetricsTest, CountersGaugesAndHistogramsRender) {
  Metrics m;
  m.describe("quilt_requests_total", "counter", "Requests");
  m.add("quilt_requests_total", {{"tenant", "t1"}});
  m.add("quilt_requests_total", {{"tenant", "t1"}}, 2);
  m.set("quilt_queue_depth", {}, 7);
  m.observe("quilt_ttft_seconds", {{"adapter", "a"}}, 0.003, latency_buckets());
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, "# HELP quilt_requests_total Requests")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE quilt_requests_total counter")) << text;
  EXPECT_TRUE(has_line(text, "quilt_requests_total{tenant=\"t1\"} 3")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE quilt_queue_depth gauge")) << text;
  EXPECT_TRUE(has_line(text, "quilt_queue_depth 7")) << text;
  EXPECT_TRUE(has_line(text, "quilt_ttft_seconds_bucket{adapter=\"a\",le=\"0.0025\"} 0")) << text;
  EXPECT_TRUE(has_line(text, "quilt_ttft_seconds_bucket{adapter=\"a\",le=\"0.005\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "quilt_ttft_seconds_count{adapter=\"a\"} 1")) << text;
}

TEST(MetricsTest, SetOnACounterFollowsATotalUpwardOnly) {
  Metrics m;
  m.describe("quilt_engine_steps_total", "counter", "Steps");
  m.set("quilt_engine_steps_total", {}, 10);
  m.set("quilt_engine_steps_total", {}, 4);  // never down
  EXPECT_TRUE(has_line(m.render(), "quilt_engine_steps_total 10"));
}

TEST(MetricsTest, VllmNamesAndClearedSeries) {
  Metrics m;
  m.describe("vllm:lora_requests_info", "gauge", "Adapters");
  m.set("vllm:lora_requests_info", {{"running_lora_adapters", "a"}}, 1);
  m.clear("vllm:lora_requests_info");
  m.set("vllm:lora_requests_info", {{"running_lora_adapters", "b"}}, 2);
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, "vllm:lora_requests_info{running_lora_adapters=\"b\"} 2")) << text;
  EXPECT_EQ(text.find("running_lora_adapters=\"a\""), std::string::npos) << text;
}

TEST(MetricsTest, ScrapeCollectorsRunAndBadNamesAreIgnored) {
  Metrics m;
  int calls = 0;
  m.on_scrape([&calls](Metrics& mm) { mm.set("quilt_scrapes", {}, ++calls); });
  m.add("bad name", {});                  // not a metric name: ignored
  m.add("quilt_x_total", {{"bad-label", "v"}});  // not a label name: ignored
  m.set("quilt_x_total", {}, 3);                 // a counter's total, not a gauge
  m.render();
  const std::string text = m.render();
  EXPECT_TRUE(has_line(text, "quilt_scrapes 2")) << text;
  EXPECT_TRUE(has_line(text, "quilt_x_total 3")) << text;
  EXPECT_EQ(text.find("bad"), std::string::npos) << text;
}

}  // namespace
}  // namespace quilt
