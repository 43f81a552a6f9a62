// Wires the admin API of API.md (tenants, keys, adapters), /metrics, /healthz and /readyz.
#include "admin/admin_routes.h"

#include "admin/adapter_routes.h"
#include "admin/console/console_routes.h"
#include "admin/route_helpers.h"
#include "admin/tenant_routes.h"
#include "gateway/http_server.h"

namespace quilt::admin {

using gateway::HttpRequest;
using gateway::Platform;

void add_admin_routes(gateway::Router& router, Platform& p) {
  add_tenant_routes(router, p);
  add_adapter_routes(router, p);
  add_metrics_route(router, p);
  add_console_routes(router);  // the console calls the admin API: it lives where that does
}

void add_health_routes(gateway::Router& router, Platform& p, const std::atomic<bool>& ready) {
  router.add("GET", "/healthz", [](HttpRequest&, Writer w) { reply(*w, 200, {{"status", "ok"}}); });
  router.add("GET", "/readyz", [&ready, &p](HttpRequest&, Writer w) {
    if (ready && !p.draining) return reply(*w, 200, {{"status", "ready"}});
    send_error(*w, 503, "not ready", "overloaded_error", "", {{"Retry-After", "1"}});
  });
}

}  // namespace quilt::admin
