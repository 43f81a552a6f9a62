// GET /metrics and the engine gauges sampled at scrape time.
#include "admin/admin_routes.h"

#include "admin/route_helpers.h"
#include "common/memory.h"
#include "gateway/auth.h"

namespace quilt::admin {

using gateway::HttpRequest;
using gateway::Platform;

void add_metrics_route(gateway::Router& router, Platform& p) {
  router.add("GET", "/metrics", [&p](HttpRequest& req, Writer w) {
    if (!gateway::authenticate_metrics(p, req, *w)) return;
    w->send(200, "text/plain; version=0.0.4", p.metrics->render());
  });
}

void add_engine_metrics(Platform& p) {
  Metrics& m = *p.metrics;
  m.describe("quilt_http_requests_total", "counter", "HTTP requests by route and status");
  m.describe("quilt_prompt_tokens_total", "counter", "Prompt tokens by tenant and adapter");
  m.describe("quilt_completion_tokens_total", "counter", "Generated tokens by tenant and adapter");
  m.describe("quilt_time_to_first_token_seconds", "histogram", "Time from admission to the first token");
  m.describe("quilt_inter_token_latency_seconds", "histogram", "Time between tokens of a request");
  m.describe("quilt_queue_depth", "gauge", "Requests waiting for the engine");
  m.describe("quilt_running_requests", "gauge", "Requests holding KV memory");
  m.describe("quilt_batch_tokens", "gauge", "Tokens in the last engine step");
  m.describe("quilt_engine_steps_total", "counter", "Engine steps");
  m.describe("quilt_engine_step_seconds_total", "counter", "Wall time spent in engine steps");
  m.describe("quilt_kv_blocks_in_use", "gauge", "KV cache blocks in use");
  m.describe("quilt_kv_blocks_total", "gauge", "KV cache blocks");
  m.describe("quilt_adapters_resident", "gauge", "Adapters resident per tier");
  m.describe("quilt_process_resident_bytes", "gauge", "Resident memory of the server process");
  m.on_scrape([&p](Metrics& mm) {
    mm.set("quilt_process_resident_bytes", {}, static_cast<double>(resident_bytes()));
    const engine::EngineStats s = p.engine->stats();
    mm.set("quilt_queue_depth", {}, s.waiting);
    mm.set("quilt_running_requests", {}, s.running);
    mm.set("quilt_batch_tokens", {}, s.last_batch_tokens);
    mm.set("quilt_engine_steps_total", {}, static_cast<double>(s.steps));
    mm.set("quilt_engine_step_seconds_total", {}, s.step_seconds_total);
    mm.set("quilt_kv_blocks_in_use", {}, s.kv_blocks_used);
    mm.set("quilt_kv_blocks_total", {}, s.kv_blocks_total);
    int64_t host = 0, stored = 0;
    for (const auto& a : p.registry->list()) {
      ++stored;
      host += a.host_resident ? 1 : 0;
    }
    mm.set("quilt_adapters_resident", {{"tier", "device"}}, s.adapters_resident);
    mm.set("quilt_adapters_resident", {{"tier", "host"}}, static_cast<double>(host));
    mm.set("quilt_adapters_resident", {{"tier", "storage"}}, static_cast<double>(stored));
  });
}

}  // namespace quilt::admin
