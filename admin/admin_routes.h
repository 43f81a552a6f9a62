// The admin API of API.md (tenants, keys, adapters), /metrics, /healthz and /readyz.
#pragma once

#include <atomic>

#include "gateway/platform.h"
#include "gateway/router.h"

namespace quilt::admin {

// The admin API and /metrics. `p` must outlive the router's use.
void add_admin_routes(gateway::Router& router, gateway::Platform& p);

// /healthz and /readyz (no auth): /readyz answers 200 while `ready` is true and the platform is
// not draining. `p` and `ready` must outlive the router's use.
void add_health_routes(gateway::Router& router, gateway::Platform& p, const std::atomic<bool>& ready);

// GET /metrics behind the admin or metrics key (admin/metrics_routes.cc).
void add_metrics_route(gateway::Router& router, gateway::Platform& p);

// Registers the scrape-time engine gauges (queue depth, batch size, KV pages, residency).
void add_engine_metrics(gateway::Platform& p);

}  // namespace quilt::admin
