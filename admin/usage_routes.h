// GET /admin/v1/usage: the persisted usage ledger, filtered and grouped.
#pragma once

#include "gateway/platform.h"
#include "gateway/router.h"

namespace quilt::admin {

// `p` must outlive the router's use.
void add_usage_routes(gateway::Router& router, gateway::Platform& p);

}  // namespace quilt::admin
