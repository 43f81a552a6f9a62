// authenticate_tenant / authenticate_admin / authenticate_adapter_manager / authenticate_metrics.
#include "gateway/auth.h"

#include <cctype>
#include <string_view>

#include "gateway/http_server.h"

namespace quilt::gateway {
namespace {

// The credentials of "Authorization: Bearer <key>"; the scheme is case-insensitive (RFC 9110
// §11.1), and any run of spaces may follow it.
std::string bearer(const HttpRequest& req) {
  const std::string h = req.header("authorization");
  constexpr std::string_view kScheme = "bearer";
  if (h.size() <= kScheme.size() || h[kScheme.size()] != ' ') return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != kScheme[i]) return {};
  }
  const size_t start = h.find_first_not_of(' ', kScheme.size());
  return start == std::string::npos ? std::string() : h.substr(start);
}

// Compares without an early exit, so timing does not tell how much of a guess was right.
bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// `key` is not the admin key: 403 for a tenant's key, 401 for anything else.
bool refuse_non_admin(Platform& p, const std::string& key, ResponseWriter& w) {
  if (p.tenants->authenticate(key)) {
    send_error(w, Status::PermissionDenied("this route needs the admin key"));
  } else {
    send_error(w, Status::Unauthenticated("invalid admin key"));
  }
  return false;
}

}  // namespace

std::optional<tenants::Tenant> authenticate_tenant(Platform& p, const HttpRequest& req,
                                                   ResponseWriter& w) {
  const std::string key = bearer(req);
  if (key.empty()) {
    send_error(w, Status::Unauthenticated("missing API key: send Authorization: Bearer <key>"));
    return std::nullopt;
  }
  Result<tenants::KeyInfo> info = p.tenants->verify_key(key);
  if (!info.ok()) {
    send_error(w, info.status());
    return std::nullopt;
  }
  if (info->scope != tenants::KeyScope::kInference) {
    send_error(w, Status::PermissionDenied("this is a deploy key: it manages the tenant's adapters "
                                           "(/admin/v1/adapters) and cannot call inference routes; "
                                           "use an inference key"));
    return std::nullopt;
  }
  if (auto tenant = p.tenants->get(info->tenant_id); tenant.ok()) return *tenant;
  send_error(w, Status::Unauthenticated("invalid API key"));
  return std::nullopt;
}

std::optional<Principal> authenticate_adapter_manager(Platform& p, const HttpRequest& req,
                                                      ResponseWriter& w) {
  const std::string key = bearer(req);
  if (key.empty()) {
    send_error(w, Status::Unauthenticated(
                      "missing key: send the admin key or a deploy key (Authorization: Bearer <key>)"));
    return std::nullopt;
  }
  if (p.tenants->is_admin_key(key)) return Principal{true, {}, {}};
  Result<tenants::KeyInfo> info = p.tenants->verify_key(key);
  if (!info.ok()) {
    send_error(w, info.status());
    return std::nullopt;
  }
  if (info->scope != tenants::KeyScope::kDeploy) {
    send_error(w, Status::PermissionDenied("this route needs the admin key or a deploy key; an "
                                           "inference key only calls the /v1 routes"));
    return std::nullopt;
  }
  return Principal{false, info->tenant_id, info->key_id};
}

bool authenticate_admin(Platform& p, const HttpRequest& req, ResponseWriter& w) {
  const std::string key = bearer(req);
  if (key.empty()) {
    send_error(w, Status::Unauthenticated("missing admin key: send Authorization: Bearer <key>"));
    return false;
  }
  if (p.tenants->is_admin_key(key)) return true;
  return refuse_non_admin(p, key, w);
}

bool authenticate_metrics(Platform& p, const HttpRequest& req, ResponseWriter& w) {
  const std::string key = bearer(req);
  if (key.empty()) {
    send_error(w, Status::Unauthenticated("missing key: /metrics needs the admin key or the "
                                          "metrics key (Authorization: Bearer <key>)"));
    return false;
  }
  if (constant_time_equal(key, p.metrics_key) || p.tenants->is_admin_key(key)) return true;
  return refuse_non_admin(p, key, w);
}

}  // namespace quilt::gateway
