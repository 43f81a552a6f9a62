#include "admin/route_helpers.h"

#include "gateway/auth.h"
#include "gateway/http_server.h"
#include "gateway/openai_routes.h"

namespace quilt::admin {

using gateway::send_error;
using nlohmann::json;

void add_admin_route(gateway::Router& router, gateway::Platform& p, const std::string& method,
                     const std::string& path, Handler h, gateway::BodyMode mode) {
  router.add(method, path,
             gateway::metered(p, path, [&p, h = std::move(h)](gateway::HttpRequest& req, Writer w) {
               if (gateway::authenticate_admin(p, req, *w)) h(req, std::move(w));
             }),
             mode);
}

void reply(gateway::ResponseWriter& w, int status, const json& body) {
  w.send(status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::optional<json> json_body(const gateway::HttpRequest& req, gateway::ResponseWriter& w) {
  if (!gateway::require_json(req, w)) return std::nullopt;
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    send_error(w, Status::InvalidArgument("request body must be a JSON object"));
    return std::nullopt;
  }
  return j;
}

}  // namespace quilt::admin
