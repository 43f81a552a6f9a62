// record_completion: the per-request metrics of a completion and its access-log figures.
#include "gateway/completion_metrics.h"

namespace quilt::gateway {

void describe_completion_metrics(Metrics& m) {
  m.describe("quilt_prompt_tokens_total", "counter", "Prompt tokens by tenant and adapter");
  m.describe("quilt_completion_tokens_total", "counter", "Generated tokens by tenant and adapter");
  m.describe("quilt_requests_total", "counter",
             "Finished completion choices by tenant, adapter, served version and finish reason");
  m.describe("quilt_time_to_first_token_seconds", "histogram", "Time from admission to the first token");
  m.describe("quilt_inter_token_latency_seconds", "histogram", "Time between tokens of a request");
  m.describe("quilt_queue_time_seconds", "histogram",
             "Time a request waited in the engine queue before its first step");
  m.describe("quilt_e2e_latency_seconds", "histogram", "Time from admission to the last token");
  m.describe("quilt_request_prompt_tokens", "histogram", "Prompt length of each request");
  m.describe("quilt_request_completion_tokens", "histogram",
             "Generated tokens of each request (every choice)");
}

void record_completion(Metrics& m, AccessRecord* access, const CompletionOutcome& o) {
  const Labels labels = {{"tenant", o.tenant}, {"adapter", o.adapter}};
  const int64_t choices = static_cast<int64_t>(o.finish_reasons.size());
  m.add("quilt_prompt_tokens_total", labels, static_cast<double>(o.prompt_tokens * choices));
  m.add("quilt_completion_tokens_total", labels, static_cast<double>(o.completion_tokens));
  const std::string version = o.adapter.empty() ? "" : std::to_string(o.version);
  for (const std::string& reason : o.finish_reasons) {
    m.add("quilt_requests_total", {{"tenant", o.tenant}, {"adapter", o.adapter}, {"version", version},
                                   {"finish_reason", reason}});
  }
  if (o.queue_s >= 0) m.observe("quilt_queue_time_seconds", labels, o.queue_s, latency_buckets());
  m.observe("quilt_e2e_latency_seconds", labels, o.e2e_s, latency_buckets());
  m.observe("quilt_request_prompt_tokens", labels, static_cast<double>(o.prompt_tokens), token_buckets());
  m.observe("quilt_request_completion_tokens", labels, static_cast<double>(o.completion_tokens),
            token_buckets());
  if (!access) return;
  CompletionRecord r;
  r.adapter = o.adapter;
  r.version = o.version;
  r.prompt_tokens = o.prompt_tokens * choices;
  r.completion_tokens = o.completion_tokens;
  r.queue_s = o.queue_s;
  r.ttft_s = o.ttft_s;
  if (!o.finish_reasons.empty()) r.finish_reason = o.finish_reasons.front();
  access->set_completion(std::move(r));
}

}  // namespace quilt::gateway
