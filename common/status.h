// Status and Result<T>: errors as values at every module boundary.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace quilt {

// Each code maps one-to-one onto an HTTP status of API.md (see http_status()).
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // 400: malformed or out-of-range input
  kUnauthenticated,     // 401
  kPermissionDenied,    // 403
  kNotFound,            // 404
  kMethodNotAllowed,    // 405
  kPayloadTooLarge,     // 413
  kUnsupportedMedia,    // 415
  kUnprocessable,       // 422: well-formed but does not fit (e.g. an adapter for another model)
  kResourceExhausted,   // 429
  kInternal,            // 500
  kUnimplemented,       // 501
  kUnavailable,         // 503: overloaded or draining
  kIOError,             // 500: a file or device could not be read or written
  kInsufficientStorage, // 507: storage is full or failing; writes are refused until it recovers
};

class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
  static Status Unauthenticated(std::string msg) { return {StatusCode::kUnauthenticated, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) { return {StatusCode::kPermissionDenied, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status MethodNotAllowed(std::string msg) { return {StatusCode::kMethodNotAllowed, std::move(msg)}; }
  static Status PayloadTooLarge(std::string msg) { return {StatusCode::kPayloadTooLarge, std::move(msg)}; }
  static Status UnsupportedMedia(std::string msg) { return {StatusCode::kUnsupportedMedia, std::move(msg)}; }
  static Status Unprocessable(std::string msg) { return {StatusCode::kUnprocessable, std::move(msg)}; }
  static Status ResourceExhausted(std::string msg) { return {StatusCode::kResourceExhausted, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
  static Status Unimplemented(std::string msg) { return {StatusCode::kUnimplemented, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status IOError(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status InsufficientStorage(std::string msg) { return {StatusCode::kInsufficientStorage, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }
  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsUnprocessable() const { return code_ == StatusCode::kUnprocessable; }
  bool IsUnimplemented() const { return code_ == StatusCode::kUnimplemented; }
  bool IsIOError() const { return code_ == StatusCode::kIOError; }
  bool IsInsufficientStorage() const { return code_ == StatusCode::kInsufficientStorage; }

  // A copy with `context: ` in front of the message, same code.
  Status with_context(std::string_view context) const {
    if (ok()) return *this;
    return Status(code_, std::string(context) + ": " + message_);
  }

  std::string to_string() const;

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// The HTTP status that API.md gives to a code.
int http_status(StatusCode code);
std::string_view status_code_name(StatusCode code);

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "a Result holds an error Status or a value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace quilt

// Early return of a non-OK Status.
#define QUILT_RETURN_IF_ERROR(expr)          \
  do {                                       \
    ::quilt::Status quilt_status_ = (expr);  \
    if (!quilt_status_.ok()) return quilt_status_; \
  } while (0)

#define QUILT_CONCAT_INNER(a, b) a##b
#define QUILT_CONCAT(a, b) QUILT_CONCAT_INNER(a, b)

// `QUILT_ASSIGN_OR_RETURN(auto x, make_x());` declares x from a Result or returns its Status.
#define QUILT_ASSIGN_OR_RETURN(lhs, expr) \
  QUILT_ASSIGN_OR_RETURN_IMPL(QUILT_CONCAT(quilt_result_, __LINE__), lhs, expr)
#define QUILT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
