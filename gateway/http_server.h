// The Boost.Beast HTTP/1.1 server: listener, sessions with keep-alive, limits and timeouts.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"
#include "gateway/router.h"

namespace quilt::gateway {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                  // 0: pick a free port (tests)
  int threads = 0;                       // 0: one per core
  uint64_t max_body_bytes = 8ull << 20;  // JSON bodies (413 above)
  uint64_t max_upload_bytes = 4ull << 30;  // BodyMode::kFile bodies, streamed to disk
  uint32_t max_header_bytes = 16 << 10;  // 431 above... answered 400 with the envelope
  std::chrono::seconds read_timeout{30};  // whole request (headers + body) must arrive within
  std::chrono::seconds idle_timeout{60};  // keep-alive connection with no request
  int max_connections = 4096;            // beyond: 503 and close
  // Bytes of a stream queued for a client and not yet taken by its socket. A client that reads
  // slower than its stream is produced is dropped (its request cancelled) past this bound, so a
  // connection never holds more than this in the server's memory.
  uint64_t max_send_buffer_bytes = 1u << 20;
  // A write (at most max_send_buffer_bytes) that does not complete within this drops the client:
  // one that stopped reading leaves before its stream's buffer is even full.
  std::chrono::seconds write_timeout{30};
  std::filesystem::path upload_dir = std::filesystem::temp_directory_path();
};

// Sends API.md's error envelope: {"error": {"message", "type", "param", "code"}}.
void send_error(ResponseWriter& w, const Status& status, const std::string& param = "");
void send_error(ResponseWriter& w, int http_status, const std::string& message,
                const std::string& type, const std::string& param = "",
                std::vector<std::pair<std::string, std::string>> headers = {});

// Validation messages start with the field they are about ("top_p: must be ..."): that field,
// for the envelope's `param`, or "" when the status is no InvalidArgument or names no field.
std::string param_of(const Status& status);

// True when the request's media type is application/json (parameters such as charset allowed);
// otherwise answers 415 and returns false.
bool require_json(const HttpRequest& req, ResponseWriter& w);

class HttpServer {
 public:
  // `router` must outlive the server.
  HttpServer(ServerOptions options, const Router& router);
  ~HttpServer();  // stops

  Status start();         // binds and listens; starts the thread pool
  uint16_t port() const;  // the bound port
  // Stops accepting; requests in flight may finish until `drain` has passed, then everything
  // closes and the threads join.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(10000));
  int active_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quilt::gateway
