// Status names and their HTTP statuses.
#include "common/status.h"

namespace quilt {

int http_status(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kMethodNotAllowed: return 405;
    case StatusCode::kPayloadTooLarge: return 413;
    case StatusCode::kUnsupportedMedia: return 415;
    case StatusCode::kUnprocessable: return 422;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kUnimplemented: return 501;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kInsufficientStorage: return 507;
    case StatusCode::kInternal:
    case StatusCode::kIOError: return 500;
  }
  return 500;
}

std::string_view status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_request_error";
    case StatusCode::kUnauthenticated: return "authentication_error";
    case StatusCode::kPermissionDenied: return "permission_error";
    case StatusCode::kNotFound: return "not_found_error";
    case StatusCode::kMethodNotAllowed: return "method_not_allowed";
    case StatusCode::kPayloadTooLarge: return "payload_too_large";
    case StatusCode::kUnsupportedMedia: return "unsupported_media_type";
    case StatusCode::kUnprocessable: return "unprocessable_entity";
    case StatusCode::kResourceExhausted: return "rate_limit_error";
    case StatusCode::kInternal: return "internal_error";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kUnavailable: return "overloaded_error";
    case StatusCode::kIOError: return "io_error";
    case StatusCode::kInsufficientStorage: return "insufficient_storage";
  }
  return "internal_error";
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(status_code_name(code_)) + ": " + message_;
}

}  // namespace quilt
