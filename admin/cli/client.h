// What every admin command shares: where the server is, the key, the output format, and one call
// that sends a request and turns the answer into output and an exit code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "admin/cli/http_client.h"

namespace quilt::admin::cli {

// Exit codes: 0 done, 1 the server refused (its error message printed), 2 the server could not be
// reached or the command line was wrong.
constexpr int kExitRefused = 1;
constexpr int kExitUnreachable = 2;

struct ClientOptions {
  std::string url = "http://127.0.0.1:8080";
  std::string key;
  bool json = false;
};

// Adds --url (env QUILT_URL), --key (env QUILT_KEY, then QUILT_ADMIN_KEY) and --json to `cmd`.
void add_client_options(CLI::App* cmd, ClientOptions& options);

// The result of one call: the exit code so far and, when the server said 2xx, its JSON answer.
struct CallResult {
  int exit_code = 0;
  nlohmann::json body;
  bool ok() const { return exit_code == 0; }
};

// Sends `method target` with `body` (JSON when non-null). On a non-2xx answer prints the
// server's error message on stderr and returns kExitRefused; unreachable: kExitUnreachable.
CallResult call(const ClientOptions& options, const std::string& method, const std::string& target,
                const nlohmann::json& body = nullptr);

// Sends any body (an upload); same handling of the answer as call().
CallResult call_raw(const ClientOptions& options, const std::string& method, const std::string& target,
                    std::vector<BodyPiece> body, const std::string& content_type, const Progress& progress);

// Prints a 2xx answer: the JSON as the server sent it with --json, else what `human` writes.
// Returns the exit code.
int print_result(const ClientOptions& options, const CallResult& r,
                 const std::function<std::string(const nlohmann::json&)>& human);

// Prints an error that happened before any request ("quilt: ...") and returns kExitUnreachable.
int usage_error(const std::string& message);

}  // namespace quilt::admin::cli
