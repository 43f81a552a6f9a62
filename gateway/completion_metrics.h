// What one completion adds, when it ends, to the metrics and to its request's access-log line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "gateway/access_log.h"
#include "gateway/platform.h"

namespace quilt::gateway {

struct CompletionOutcome {
  std::string tenant;
  std::string adapter;     // "" for the base model
  int64_t version = 0;     // the adapter version that served it (0: base model)
  int64_t prompt_tokens = 0;      // of one choice's prompt
  int64_t completion_tokens = 0;  // every choice together
  std::vector<std::string> finish_reasons;  // one per choice; "error" when it failed
  double queue_s = -1;     // engine queue time of the first choice to start; -1: never ran
  double ttft_s = -1;      // to the first token of any choice; -1: none came
  double e2e_s = 0;        // admission to the end
};

// Declares the completion metrics (HELP and TYPE), so that they show before the first request.
void describe_completion_metrics(Metrics& m);

// Counts the outcome: tokens, requests by finish reason and version, queue time, end-to-end
// latency and request lengths by tenant and adapter; and fills `access` (may be null).
void record_completion(Metrics& m, AccessRecord* access, const CompletionOutcome& o);

}  // namespace quilt::gateway
