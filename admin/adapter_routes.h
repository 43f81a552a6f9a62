// The admin API's adapter routes (API.md).
#pragma once

#include "gateway/platform.h"
#include "gateway/router.h"

namespace quilt::admin {

// /admin/v1/adapters... `p` must outlive the router's use.
void add_adapter_routes(gateway::Router& router, gateway::Platform& p);

}  // namespace quilt::admin
