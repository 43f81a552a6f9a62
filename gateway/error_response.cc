// send_error(): API.md's error envelope on a ResponseWriter.
#include "gateway/error_response.h"

#include <nlohmann/json.hpp>

#include "gateway/http_server.h"

namespace quilt::gateway {

bool require_json(const HttpRequest& req, ResponseWriter& w) {
  if (req.header("content-type").rfind("application/json", 0) == 0) return true;
  send_error(w, Status::UnsupportedMedia("Content-Type must be application/json"));
  return false;
}

std::string error_json(std::string_view message, std::string_view type, std::string_view param) {
  nlohmann::json error = {
      {"message", message},
      {"type", type},
      {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
      {"code", type},
  };
  return nlohmann::json{{"error", std::move(error)}}.dump(-1, ' ', false,
                                                          nlohmann::json::error_handler_t::replace);
}

void send_error(ResponseWriter& w, const Status& status, const std::string& param) {
  // An OK status here is a caller bug; answer 500 rather than a success with an error body.
  const StatusCode code = status.ok() ? StatusCode::kInternal : status.code();
  std::vector<std::pair<std::string, std::string>> headers;
  // API.md promises Retry-After with every 429 and 503; callers wanting another value use the
  // other overload.
  if (code == StatusCode::kResourceExhausted || code == StatusCode::kUnavailable) {
    headers.emplace_back("Retry-After", "1");
  }
  send_error(w, http_status(code),
             status.ok() ? "internal error: OK status sent as an error" : status.message(),
             std::string(status_code_name(code)), param, std::move(headers));
}

void send_error(ResponseWriter& w, int http_status, const std::string& message,
                const std::string& type, const std::string& param,
                std::vector<std::pair<std::string, std::string>> headers) {
  w.send(http_status, "application/json", error_json(message, type, param), std::move(headers));
}

}  // namespace quilt::gateway
