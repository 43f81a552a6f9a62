// authenticate_tenant / authenticate_admin.
#include "gateway/auth.h"

#include "gateway/http_server.h"

namespace quilt::gateway {
namespace {

std::string bearer(const HttpRequest& req) {
  const std::string h = req.header("authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size() || h.compare(0, kPrefix.size(), kPrefix) != 0) return {};
  return h.substr(kPrefix.size());
}

}  // namespace

std::optional<tenants::Tenant> authenticate_tenant(Platform& p, const HttpRequest& req,
                                                   ResponseWriter& w) {
  const std::string key = bearer(req);
  if (key.empty()) {
    send_error(w, Status::Unauthenticated("missing API key: send Authorization: Bearer <key>"));
    return std::nullopt;
  }
  if (std::optional<std::string> tenant_id = p.tenants->authenticate(key)) {
    if (auto tenant = p.tenants->get(*tenant_id); tenant.ok()) return *tenant;
  }
  send_error(w, Status::Unauthenticated("invalid API key"));
  return std::nullopt;
}

bool authenticate_admin(Platform& p, const HttpRequest& req, ResponseWriter& w) {
  const std::string key = bearer(req);
  if (key.empty()) {
    send_error(w, Status::Unauthenticated("missing admin key: send Authorization: Bearer <key>"));
    return false;
  }
  if (p.tenants->is_admin_key(key)) return true;
  if (p.tenants->authenticate(key)) {
    send_error(w, Status::PermissionDenied("this route needs the admin key"));
  } else {
    send_error(w, Status::Unauthenticated("invalid admin key"));
  }
  return false;
}

}  // namespace quilt::gateway
