// Bearer-key checks shared by the tenant and admin routes.
#pragma once

#include <optional>

#include "gateway/http_types.h"
#include "gateway/platform.h"

namespace quilt::gateway {

// The tenant whose key the request carries; otherwise answers 401 and returns nothing.
std::optional<tenants::Tenant> authenticate_tenant(Platform& p, const HttpRequest& req,
                                                   ResponseWriter& w);
// True for the admin key; otherwise answers 401 (no or unknown key) or 403 (a tenant key).
bool authenticate_admin(Platform& p, const HttpRequest& req, ResponseWriter& w);
// True for the admin key or Platform::metrics_key; otherwise answers like authenticate_admin.
// Metrics labels name tenants and private adapters, so they are not public.
bool authenticate_metrics(Platform& p, const HttpRequest& req, ResponseWriter& w);

}  // namespace quilt::gateway
