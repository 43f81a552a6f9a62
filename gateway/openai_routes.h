// The tenant API of API.md: /v1/models, completions and chat completions, per-adapter routes.
#pragma once

#include "gateway/platform.h"
#include "gateway/router.h"

namespace quilt::gateway {

// `p` must outlive the router's use.
void add_openai_routes(Router& router, Platform& p);

// Wraps a handler so that every answer is counted in quilt_http_requests_total{route, status}.
Handler metered(Platform& p, const std::string& route, Handler handler);

}  // namespace quilt::gateway
