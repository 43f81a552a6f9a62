// The admin API's tenant and key routes (API.md).
#pragma once

#include "gateway/platform.h"
#include "gateway/router.h"

namespace quilt::admin {

// /admin/v1/tenants... and their keys. `p` must outlive the router's use.
void add_tenant_routes(gateway::Router& router, gateway::Platform& p);

}  // namespace quilt::admin
