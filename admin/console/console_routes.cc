// Serves the web console: the embedded page and assets with their content types and a strict CSP.
#include "admin/console/console_routes.h"

#include "admin/console/console_assets.h"
#include "gateway/http_server.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;
using gateway::ResponseWriter;

constexpr const char* kIndex = "index.html";

const ConsoleAsset* find_asset(const std::string& name) {
  for (const auto& a : console_assets()) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

void serve(const std::string& name, ResponseWriter& w) {
  const ConsoleAsset* a = find_asset(name);
  const std::string type = console_content_type(name);
  if (a == nullptr || type.empty()) {
    return gateway::send_error(w, Status::NotFound("no console asset named '" + name + "'"));
  }
  w.send(200, type, std::string(a->bytes()), console_headers());
}

}  // namespace

std::string console_content_type(const std::string& name) {
  auto ends_with = [&](std::string_view ext) {
    return name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  return "";
}

std::vector<std::pair<std::string, std::string>> console_headers() {
  return {
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-cache"},
  };
}

void add_console_routes(gateway::Router& router) {
  router.add("GET", "/console",
             [](HttpRequest&, std::shared_ptr<ResponseWriter> w) { serve(kIndex, *w); });
  router.add("GET", "/console/{asset}", [](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    serve(req.params.at("asset"), *w);
  });
}

}  // namespace quilt::admin
