// serve_command: flags and config → storage, tenants, registry, engine, HTTP server; signals.
#include "app/serve_command.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "app/demo_model.h"
#include "app/server.h"
#include "common/files.h"

namespace quilt::app {
namespace {

struct ServeFlags {
  std::filesystem::path model = demo_model_dir();
  std::filesystem::path data_dir = "quilt-data";
  std::string device = "cpu";
  std::string admin_key_file;
  gateway::ServerOptions server;
  int64_t drain_timeout_s = 30;
  int64_t kv_cache_mb = 256;
  int64_t host_cache_mb = 1024;
  int64_t request_timeout_s = 600;
  int64_t max_waiting = 4096;
  int64_t max_in_flight_per_tenant = 1024;
};

// Applies one setting by name (flags without "--", config file keys). Returns an error or "".
std::string apply(ServeFlags& f, const std::string& key, const std::string& v) {
  auto num = [&](int64_t& out) -> std::string {
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0) return key + ": expected a non-negative integer, got '" + v + "'";
    out = n;
    return "";
  };
  int64_t n = 0;
  std::string err;
  if (key == "model") f.model = v;
  else if (key == "data-dir") f.data_dir = v;
  else if (key == "host") f.server.host = v;
  else if (key == "device") f.device = v;
  else if (key == "admin-key-file") f.admin_key_file = v;
  else if (key == "port") { if ((err = num(n)).empty() && n > 65535) err = "port: out of range"; f.server.port = static_cast<uint16_t>(n); }
  else if (key == "threads") { err = num(n); f.server.threads = static_cast<int>(n); }
  else if (key == "max-body-bytes") { err = num(n); f.server.max_body_bytes = n; }
  else if (key == "max-upload-bytes") { err = num(n); f.server.max_upload_bytes = n; }
  else if (key == "max-header-bytes") { err = num(n); f.server.max_header_bytes = static_cast<uint32_t>(n); }
  else if (key == "read-timeout") { err = num(n); f.server.read_timeout = std::chrono::seconds(n); }
  else if (key == "idle-timeout") { err = num(n); f.server.idle_timeout = std::chrono::seconds(n); }
  else if (key == "max-connections") { err = num(n); f.server.max_connections = static_cast<int>(n); }
  else if (key == "drain-timeout") err = num(f.drain_timeout_s);
  else if (key == "kv-cache-mb") err = num(f.kv_cache_mb);
  else if (key == "host-cache-mb") err = num(f.host_cache_mb);
  else if (key == "request-timeout") err = num(f.request_timeout_s);
  else if (key == "max-waiting") err = num(f.max_waiting);
  else if (key == "max-in-flight-per-tenant") err = num(f.max_in_flight_per_tenant);
  else return "unknown setting '" + key + "'";
  return err;
}

std::string load_config(ServeFlags& f, const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) return text.status().message();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return path + ": not a JSON object";
  for (const auto& [key, value] : j.items()) {
    const std::string v = value.is_string() ? value.get<std::string>() : value.dump();
    if (std::string err = apply(f, key, v); !err.empty()) return path + ": " + err;
  }
  return "";
}

std::string parse_flags(int argc, char** argv, ServeFlags& f) {
  // --config first, so that flags given beside it win.
  for (int i = 0; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--config") {
      if (std::string err = load_config(f, argv[i + 1]); !err.empty()) return err;
    }
  }
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) return "unexpected argument '" + a + "'";
    if (i + 1 >= argc) return a + " needs a value";
    const std::string v = argv[++i];
    if (a == "--config") continue;
    if (std::string err = apply(f, a.substr(2), v); !err.empty()) return err;
  }
  return "";
}

int fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "quilt serve: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

}  // namespace

int serve_command(int argc, char** argv) {
  ServeFlags f;
  if (std::string err = parse_flags(argc, argv, f); !err.empty()) {
    std::fprintf(stderr, "quilt serve: %s\n", err.c_str());
    return 2;
  }
  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ServerConfig config;
  config.model = f.model;
  config.data_dir = f.data_dir;
  config.device = f.device;
  config.http = f.server;
  config.kv_cache_mb = f.kv_cache_mb;
  config.host_cache_mb = f.host_cache_mb;
  config.request_timeout = std::chrono::seconds(f.request_timeout_s);
  config.max_waiting = static_cast<int32_t>(f.max_waiting);
  config.max_in_flight_per_tenant = static_cast<int32_t>(f.max_in_flight_per_tenant);
  if (!f.admin_key_file.empty()) {
    auto key = read_file(f.admin_key_file);
    if (!key.ok()) return fail("admin key", key.status());
    std::string k = *key;
    while (!k.empty() && (k.back() == '\n' || k.back() == '\r' || k.back() == ' ')) k.pop_back();
    config.admin_key = k;
  } else if (const char* env = std::getenv("QUILT_ADMIN_KEY"); env && *env) {
    config.admin_key = env;
  }
  if (config.admin_key && config.admin_key->empty()) {
    return fail("admin key", Status::InvalidArgument("the admin key file is empty"));
  }
  auto server = Server::start(config);
  if (!server.ok()) return fail("start", server.status());
  Server& s = **server;
  if (!s.generated_admin_key().empty()) {
    std::printf("admin key (shown once, store it now): %s\n", s.generated_admin_key().c_str());
  }
  std::printf("quilt serving %s on http://%s:%u (device %s, data %s)\n", s.model_id().c_str(),
              f.server.host.c_str(), s.port(), f.device.c_str(), f.data_dir.c_str());
  std::fflush(stdout);

  // Flush usage every few seconds until SIGTERM/SIGINT; then drain and exit 0.
  for (;;) {
    timespec period{5, 0};
    const int sig = sigtimedwait(&signals, nullptr, &period);
    if (sig == SIGTERM || sig == SIGINT) break;
    (void)s.flush_usage();
  }
  std::printf("quilt: draining\n");
  std::fflush(stdout);
  if (Status st = s.stop(std::chrono::seconds(f.drain_timeout_s)); !st.ok()) return fail("flush", st);
  std::printf("quilt: stopped\n");
  return 0;
}

}  // namespace quilt::app
