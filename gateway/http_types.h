// What a route handler sees of an HTTP request, and how it answers (at once or as a stream).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace quilt::gateway {

class AccessRecord;  // gateway/access_log.h

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // without the query string
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::map<std::string, std::string> params;   // path parameters of the matched route ({adapter})
  std::string body;                            // BodyMode::kMemory routes
  std::filesystem::path body_file;             // BodyMode::kFile routes: a temp file, deleted
                                               // when the request object is destroyed
  std::shared_ptr<void> body_file_owner;       // keeps body_file alive while the request lives
  // The access-log line of this request (request id, tenant, completion figures); handlers add
  // to it. Null only for requests made outside a server (tests).
  std::shared_ptr<AccessRecord> access;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Answers one request. Thread-safe: may be used from any thread (the engine thread included);
// everything is posted to the connection's own executor. After the connection is gone, calls
// are ignored and return false.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A complete response. Extra headers as name → value.
  virtual void send(int status, const std::string& content_type, std::string body,
                    std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  // A streamed response (chunked transfer encoding), e.g. text/event-stream.
  virtual void start_stream(int status, const std::string& content_type,
                            std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  virtual bool write_chunk(std::string data) = 0;
  virtual void end_stream() = 0;
  // Called once (on a connection thread) if the client goes away before the response is done.
  virtual void on_disconnect(std::function<void()> callback) = 0;
  virtual bool connected() const = 0;
};

// A writer that passes everything on to `inner`, letting a subclass see the status and add headers
// as the response starts (metrics, rate-limit headers).
class ForwardingWriter : public ResponseWriter {
 public:
  explicit ForwardingWriter(std::shared_ptr<ResponseWriter> inner) : inner_(std::move(inner)) {}
  void send(int status, const std::string& content_type, std::string body,
            std::vector<std::pair<std::string, std::string>> headers = {}) final {
    on_start(status, headers);
    inner_->send(status, content_type, std::move(body), std::move(headers));
  }
  void start_stream(int status, const std::string& content_type,
                    std::vector<std::pair<std::string, std::string>> headers = {}) final {
    on_start(status, headers);
    inner_->start_stream(status, content_type, std::move(headers));
  }
  bool write_chunk(std::string data) final { return inner_->write_chunk(std::move(data)); }
  void end_stream() final { inner_->end_stream(); }
  void on_disconnect(std::function<void()> callback) final {
    inner_->on_disconnect(std::move(callback));
  }
  bool connected() const final { return inner_->connected(); }

 protected:
  // Called once, as the response (whole or streamed) starts.
  virtual void on_start(int status, std::vector<std::pair<std::string, std::string>>& headers) = 0;

 private:
  std::shared_ptr<ResponseWriter> inner_;
};

using Handler = std::function<void(HttpRequest&, std::shared_ptr<ResponseWriter>)>;

enum class BodyMode { kMemory, kFile };

}  // namespace quilt::gateway
