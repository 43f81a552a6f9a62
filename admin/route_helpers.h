// What every admin route file shares: the admin-key wrapper and JSON replies.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "gateway/http_types.h"
#include "gateway/platform.h"
#include "gateway/router.h"

namespace quilt::admin {

using Writer = std::shared_ptr<gateway::ResponseWriter>;
using Handler = std::function<void(gateway::HttpRequest&, Writer)>;

// Registers a metered route that answers only requests carrying the admin key.
void add_admin_route(gateway::Router& router, gateway::Platform& p, const std::string& method,
                     const std::string& path, Handler h,
                     gateway::BodyMode mode = gateway::BodyMode::kMemory);

// Sends `body` as JSON (invalid UTF-8 replaced).
void reply(gateway::ResponseWriter& w, int status, const nlohmann::json& body);

// The JSON object body of a request, or nothing after answering the error.
std::optional<nlohmann::json> json_body(const gateway::HttpRequest& req, gateway::ResponseWriter& w);

}  // namespace quilt::admin
