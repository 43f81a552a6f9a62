// client: the request/answer handling every admin command goes through.
#include "admin/cli/client.h"

#include <cstdio>
#include <cstdlib>

#include "admin/cli/output.h"

namespace quilt::admin::cli {

using nlohmann::json;

void add_client_options(CLI::App* cmd, ClientOptions& options) {
  cmd->add_option("--url", options.url, "the server (default http://127.0.0.1:8080)")
      ->envname("QUILT_URL")
      ->type_name("URL");
  cmd->add_option("--key", options.key, "the admin key or a deploy key (else $QUILT_KEY, else $QUILT_ADMIN_KEY)")
      ->envname("QUILT_KEY")
      ->type_name("KEY");
  cmd->add_flag("--json", options.json, "print the server's JSON answer instead of a table");
}

namespace {

CallResult answer(const ClientOptions& options, const std::string& method, const std::string& target,
                  const Result<HttpReply>& reply) {
  CallResult r;
  if (!reply.ok()) {
    std::fprintf(stderr, "quilt: %s (is `quilt serve` running there? set --url or QUILT_URL)\n",
                 reply.status().message().c_str());
    r.exit_code = kExitUnreachable;
    return r;
  }
  json body = json::parse(reply->body, nullptr, false);
  if (reply->status < 200 || reply->status >= 300) {
    std::string message = reply->body;
    if (!body.is_discarded() && body.contains("error") && body["error"].is_object() &&
        body["error"].contains("message")) {
      message = cell_text(body["error"]["message"]);
    }
    std::fprintf(stderr, "quilt: %s %s: %d: %s\n", method.c_str(), target.c_str(), reply->status,
                 message.c_str());
    if (reply->status == 401 && options.key.empty()) {
      std::fprintf(stderr, "quilt: no key given: use --key or set QUILT_KEY (or QUILT_ADMIN_KEY)\n");
    }
    r.exit_code = kExitRefused;
    return r;
  }
  r.body = body.is_discarded() ? json(reply->body) : std::move(body);
  return r;
}

// The key: --key or QUILT_KEY (CLI11 reads both), else QUILT_ADMIN_KEY.
std::string key_of(const ClientOptions& options) {
  if (!options.key.empty()) return options.key;
  const char* admin = std::getenv("QUILT_ADMIN_KEY");
  return admin ? admin : "";
}

}  // namespace

CallResult call_raw(const ClientOptions& options, const std::string& method, const std::string& target,
                    std::vector<BodyPiece> body, const std::string& content_type, const Progress& progress) {
  auto url = parse_server_url(options.url);
  if (!url.ok()) {
    CallResult r;
    r.exit_code = usage_error(url.status().message());
    return r;
  }
  ClientOptions resolved = options;
  resolved.key = key_of(options);
  HttpClient client(*url, resolved.key);
  return answer(resolved, method, target, client.send(method, target, std::move(body), content_type, progress));
}

CallResult call(const ClientOptions& options, const std::string& method, const std::string& target,
                const json& body) {
  std::vector<BodyPiece> pieces;
  std::string type;
  if (!body.is_null()) {
    pieces.push_back(BodyPiece::bytes(body.dump()));
    type = "application/json";
  }
  return call_raw(options, method, target, std::move(pieces), type, {});
}

int print_result(const ClientOptions& options, const CallResult& r,
                 const std::function<std::string(const json&)>& human) {
  if (!r.ok()) return r.exit_code;
  const std::string text = options.json ? r.body.dump(2) + "\n" : human(r.body);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "quilt: %s\n", message.c_str());
  return kExitUnreachable;
}

}  // namespace quilt::admin::cli
