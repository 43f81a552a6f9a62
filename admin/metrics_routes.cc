// GET /metrics and the engine gauges sampled at scrape time, including the names the Kubernetes
// inference gateway (Gateway API Inference Extension) reads from vLLM replicas.
#include "admin/admin_routes.h"

#include <chrono>

#include "admin/route_helpers.h"
#include "common/memory.h"
#include "gateway/auth.h"
#include "gateway/completion_metrics.h"

namespace quilt::admin {

using gateway::HttpRequest;
using gateway::Platform;

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

}  // namespace

void add_metrics_route(gateway::Router& router, Platform& p) {
  router.add("GET", "/metrics", [&p](HttpRequest& req, Writer w) {
    if (!gateway::authenticate_metrics(p, req, *w)) return;
    w->send(200, "text/plain; version=0.0.4", p.metrics->render());
  });
}

void add_engine_metrics(Platform& p) {
  Metrics& m = *p.metrics;
  m.describe("quilt_http_requests_total", "counter", "HTTP requests by route and status");
  gateway::describe_completion_metrics(m);
  m.describe("quilt_queue_depth", "gauge", "Requests waiting for the engine");
  m.describe("quilt_running_requests", "gauge", "Requests holding KV memory");
  m.describe("quilt_batch_tokens", "gauge", "Tokens in the last engine step");
  m.describe("quilt_engine_steps_total", "counter", "Engine steps");
  m.describe("quilt_engine_step_seconds_total", "counter", "Wall time spent in engine steps");
  m.describe("quilt_kv_blocks_in_use", "gauge", "KV cache blocks in use");
  m.describe("quilt_kv_blocks_total", "gauge", "KV cache blocks");
  m.describe("quilt_kv_cache_usage_ratio", "gauge", "Share of the KV cache blocks in use (0 to 1)");
  m.describe("quilt_preemptions_total", "counter",
             "Sequences sent back to recompute for lack of KV blocks");
  m.describe("quilt_adapters_resident", "gauge", "Adapters resident per tier");
  m.describe("quilt_adapter_loads_total", "counter",
             "Adapter loads into a tier (device: the engine's page pool; host: the host cache, "
             "read from storage)");
  m.describe("quilt_adapter_evictions_total", "counter",
             "Adapters dropped from a tier to make room (device: the engine's page pool; host: "
             "the host cache)");
  m.describe("quilt_process_resident_bytes", "gauge", "Resident memory of the server process");
  // vLLM's names and meanings, so that the inference gateway routes to Quilt replicas unchanged.
  m.describe("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.");
  m.describe("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.");
  m.describe("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.");
  m.describe("vllm:lora_requests_info", "gauge", "Running stats on lora requests.");
  m.on_scrape([&p](Metrics& mm) {
    mm.set("quilt_process_resident_bytes", {}, static_cast<double>(resident_bytes()));
    if (p.engine == nullptr) return;  // stopping
    const engine::EngineStats s = p.engine->stats();
    mm.set("quilt_queue_depth", {}, s.waiting);
    mm.set("quilt_running_requests", {}, s.running);
    mm.set("quilt_batch_tokens", {}, s.last_batch_tokens);
    mm.set("quilt_engine_steps_total", {}, static_cast<double>(s.steps));
    mm.set("quilt_engine_step_seconds_total", {}, s.step_seconds_total);
    mm.set("quilt_kv_blocks_in_use", {}, s.kv_blocks_used);
    mm.set("quilt_kv_blocks_total", {}, s.kv_blocks_total);
    // In a unified pool the total counts blocks lent to adapters: usage is of what KV may use.
    const int32_t kv_capacity = s.kv_blocks_total - s.adapter_blocks;
    const double usage = kv_capacity > 0 ? static_cast<double>(s.kv_blocks_used) / kv_capacity : 0.0;
    mm.set("quilt_kv_cache_usage_ratio", {}, usage);
    mm.set("quilt_preemptions_total", {}, static_cast<double>(s.preemptions));
    mm.set("quilt_adapter_loads_total", {{"tier", "device"}}, static_cast<double>(s.adapter_loads));
    mm.set("quilt_adapter_evictions_total", {{"tier", "device"}}, static_cast<double>(s.adapter_evictions));
    const adapters::AdapterRegistry::HostCacheStats hs = p.registry->host_cache_stats();
    mm.set("quilt_adapter_loads_total", {{"tier", "host"}}, static_cast<double>(hs.loads));
    mm.set("quilt_adapter_evictions_total", {{"tier", "host"}}, static_cast<double>(hs.evictions));
    int64_t host = 0, stored = 0;
    for (const auto& a : p.registry->list()) {
      ++stored;
      host += a.host_resident ? 1 : 0;
    }
    mm.set("quilt_adapters_resident", {{"tier", "device"}}, s.adapters_resident);
    mm.set("quilt_adapters_resident", {{"tier", "host"}}, static_cast<double>(host));
    mm.set("quilt_adapters_resident", {{"tier", "storage"}}, static_cast<double>(stored));

    mm.set("vllm:num_requests_waiting", {}, s.waiting);
    mm.set("vllm:num_requests_running", {}, s.running);
    mm.set("vllm:kv_cache_usage_perc", {}, usage);
    // One series whose labels carry the adapters and whose value is the time (as vLLM sets it);
    // the previous scrape's series goes, or old adapter lists would linger.
    const double now = std::chrono::duration<double>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
    mm.clear("vllm:lora_requests_info");
    mm.set("vllm:lora_requests_info",
           {{"running_lora_adapters", join(s.running_adapters)},
            {"waiting_lora_adapters", join(s.waiting_adapters)},
            {"max_lora", std::to_string(p.engine->options().max_adapter_slots)}},
           now);
  });
}

}  // namespace quilt::admin
