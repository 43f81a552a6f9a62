// GET /openapi.json: the OpenAPI 3.1 document of every route (gateway/openapi/openapi.json,
// embedded at build time). Public: it holds no secret and names no tenant.
#pragma once

#include <string_view>

#include "gateway/router.h"

namespace quilt::gateway {

// The document as committed, byte for byte.
std::string_view openapi_document();

void add_openapi_route(Router& router);

}  // namespace quilt::gateway
