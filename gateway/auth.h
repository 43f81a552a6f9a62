// Bearer-key checks shared by the tenant and admin routes.
#pragma once

#include <optional>
#include <string>

#include "gateway/http_types.h"
#include "gateway/platform.h"

namespace quilt::gateway {

// The tenant whose inference key the request carries (the /v1 routes); otherwise answers 401
// (no, unknown or expired key) or 403 (a deploy key) and returns nothing.
std::optional<tenants::Tenant> authenticate_tenant(Platform& p, const HttpRequest& req,
                                                   ResponseWriter& w);
// True for the admin key; otherwise answers 401 (no or unknown key) or 403 (a tenant key of
// either scope).
bool authenticate_admin(Platform& p, const HttpRequest& req, ResponseWriter& w);

// Who may manage adapters: the admin (every tenant's) or a tenant's deploy key (that tenant's).
struct Principal {
  bool admin = false;
  std::string tenant_id;  // empty for the admin
  std::string key_id;     // the deploy key's id; empty for the admin
};
// The admin key → {admin}; a deploy key → {tenant}. Otherwise answers 401 (no, unknown or expired
// key) or 403 (an inference key) and returns nothing.
std::optional<Principal> authenticate_adapter_manager(Platform& p, const HttpRequest& req,
                                                      ResponseWriter& w);
// True for the admin key or Platform::metrics_key; otherwise answers like authenticate_admin.
// Metrics labels name tenants and private adapters, so they are not public.
bool authenticate_metrics(Platform& p, const HttpRequest& req, ResponseWriter& w);

}  // namespace quilt::gateway
