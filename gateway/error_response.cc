// send_error(): API.md's error envelope on a ResponseWriter.
#include "gateway/error_response.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "gateway/http_server.h"

namespace quilt::gateway {

bool require_json(const HttpRequest& req, ResponseWriter& w) {
  // The media type is what precedes any ";" parameters, case-insensitive, spaces around it ignored.
  const std::string type = req.header("content-type");
  const std::string_view media = std::string_view(type).substr(0, type.find(';'));
  const size_t begin = media.find_first_not_of(" \t");
  const size_t end = media.find_last_not_of(" \t");
  constexpr std::string_view kJson = "application/json";
  const std::string_view trimmed =
      begin == std::string_view::npos ? std::string_view() : media.substr(begin, end - begin + 1);
  bool ok = trimmed.size() == kJson.size();
  for (size_t i = 0; ok && i < kJson.size(); ++i) {
    ok = std::tolower(static_cast<unsigned char>(trimmed[i])) == kJson[i];
  }
  if (ok) return true;
  send_error(w, Status::UnsupportedMedia("Content-Type must be application/json"));
  return false;
}

std::string param_of(const Status& st) {
  const std::string& m = st.message();
  const size_t colon = m.find(": ");
  if (!st.IsInvalidArgument() || colon == std::string::npos) return "";
  const std::string field = m.substr(0, colon);
  const bool identifier = std::all_of(field.begin(), field.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
  return identifier ? field : "";
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
