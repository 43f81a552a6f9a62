// One HTTP request's access-log record: opened by the session, annotated by its handler, written
// as one log line when the exchange ends. Also the request id (X-Request-Id).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace quilt::gateway {

// What a completion adds to its request's line.
struct CompletionRecord {
  std::string adapter;        // "" for the base model
  int64_t version = 0;        // the adapter version that served it; 0: base model or unknown
  int64_t prompt_tokens = 0;  // as billed (every choice)
  int64_t completion_tokens = 0;
  double queue_s = -1;        // submit to first scheduled, first choice; -1: not known
  double ttft_s = -1;         // admission to the first token; -1: none came
  std::string finish_reason;  // of the first choice
};

class AccessRecord {
 public:
  // Set by the session before the handler runs; constant afterwards.
  std::string request_id;
  std::string method = "-";
  std::string path = "-";
  std::string route = "-";  // the matched pattern ("/v1/adapters/{adapter}/completions")
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  // Handlers, from any thread.
  void set_tenant(std::string tenant);
  void set_completion(CompletionRecord c);
  // Why a request failed after its status went out (an error inside a 200 stream).
  void set_error(std::string cause);

  // The session, once, when the exchange ends: `status` as sent (0: none), `error` the cause of
  // an error answer (its envelope's message), `complete` false when the client went away first.
  // 5xx lines are errors, 4xx info (debug for 404 and 401, a scanner's noise), the rest info.
  void write(int status, std::string_view error, bool complete);

 private:
  std::mutex mu_;
  std::string tenant_;            // guarded by mu_
  bool has_completion_ = false;   // guarded by mu_
  CompletionRecord completion_;   // guarded by mu_
  std::string error_;             // guarded by mu_
  bool written_ = false;          // guarded by mu_
};

// A client's X-Request-Id, kept if usable: printable ASCII without spaces or quotes, cut to 128
// bytes; "" when nothing usable is left (the server then makes one).
std::string sanitize_request_id(std::string_view value);
// 32 random hex digits. Thread-safe.
std::string new_request_id();

}  // namespace quilt::gateway
