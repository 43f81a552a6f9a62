#include "gateway/openapi/openapi_route.h"

#include <memory>
#include <string>

#include "gateway/http_server.h"

namespace quilt::gateway {

void add_openapi_route(Router& router) {
  router.add("GET", "/openapi.json", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(200, "application/json", std::string(openapi_document()), {{"Cache-Control", "no-cache"}});
  });
}

}  // namespace quilt::gateway
