// serve_command: flags and config → storage, tenants, registry, engine, HTTP server; signals.
#include "app/serve_command.h"

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "app/demo_model.h"
#include "app/server.h"
#include "common/files.h"
#include "common/memory.h"

namespace quilt::app {
namespace {

// Settings go straight into the ServerConfig; only what serve itself uses is kept beside it.
struct ServeFlags {
  ServeFlags() { config.model = demo_model_dir(); }
  ServerConfig config;
  bool fraction_given = false;  // --gpu-memory-fraction
  bool kv_cache_given = false;  // --kv-cache-mb
  std::string admin_key_file;
  int64_t drain_timeout_s = 30;
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
  ServerConfig& c = f.config;
  if (key == "model") c.model = v;
  else if (key == "data-dir") c.data_dir = v;
  else if (key == "host") c.http.host = v;
  else if (key == "device") {
    c.device = v;
    const bool cuda_n = v.rfind("cuda:", 0) == 0 && v.size() > 5 &&
                        v.find_first_not_of("0123456789", 5) == std::string::npos;
    if (v != "cpu" && v != "cuda" && !cuda_n) err = "device: unknown device '" + v + "' (expected cpu, cuda or cuda:N)";
  }
  else if (key == "dtype") {
    auto d = engine::parse_compute_dtype(v);
    if (d.ok()) c.dtype = *d;
    else err = d.status().message();
  }
  else if (key == "metrics-key") c.metrics_key = v;
  else if (key == "max-lora-rank") { if ((err = num(n)).empty() && n < 1) err = "max-lora-rank: must be at least 1"; c.max_lora_rank = static_cast<int32_t>(n); }
  else if (key == "admin-key-file") f.admin_key_file = v;
  else if (key == "port") { if ((err = num(n)).empty() && n > 65535) err = "port: out of range"; c.http.port = static_cast<uint16_t>(n); }
  else if (key == "threads") { err = num(n); c.http.threads = static_cast<int>(n); }
  else if (key == "max-body-bytes") { err = num(n); c.http.max_body_bytes = n; }
  else if (key == "max-upload-bytes") { err = num(n); c.http.max_upload_bytes = n; }
  else if (key == "max-header-bytes") { err = num(n); c.http.max_header_bytes = static_cast<uint32_t>(n); }
  else if (key == "read-timeout") { err = num(n); c.http.read_timeout = std::chrono::seconds(n); }
  else if (key == "idle-timeout") { err = num(n); c.http.idle_timeout = std::chrono::seconds(n); }
  else if (key == "max-connections") { err = num(n); c.http.max_connections = static_cast<int>(n); }
  else if (key == "admin-port") { if ((err = num(n)).empty() && n > 65535) err = "admin-port: out of range"; c.admin_port = static_cast<int>(n); }
  else if (key == "write-timeout") { if ((err = num(n)).empty() && n < 1) err = "write-timeout: must be at least 1"; c.http.write_timeout = std::chrono::seconds(n); }
  else if (key == "max-send-buffer-bytes") { if ((err = num(n)).empty() && n < 4096) err = "max-send-buffer-bytes: must be at least 4096"; c.http.max_send_buffer_bytes = n; }
  else if (key == "drain-timeout") err = num(f.drain_timeout_s);
  else if (key == "kv-cache-mb") { if ((err = num(c.kv_cache_mb)).empty() && c.kv_cache_mb < 1) err = "kv-cache-mb: must be at least 1"; f.kv_cache_given = true; }
  else if (key == "lora-pool-mib") { if ((err = num(c.lora_pool_mib)).empty() && c.lora_pool_mib < 1) err = "lora-pool-mib: must be at least 1"; }
  else if (key == "max-loras") { if ((err = num(n)).empty() && (n < 1 || n > 65536)) err = "max-loras: must be in [1, 65536]"; c.max_loras = static_cast<int32_t>(n); }
  else if (key == "max-model-len") { if ((err = num(n)).empty() && (n < 1 || n > INT32_MAX)) err = "max-model-len: must be at least 1"; c.max_model_len = n; }
  else if (key == "gpu-memory-fraction") {
    char* end = nullptr;
    c.gpu_memory_fraction = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(c.gpu_memory_fraction > 0 && c.gpu_memory_fraction <= 1)) {
      err = "gpu-memory-fraction: expected a number in (0, 1], got '" + v + "'";
    }
    f.fraction_given = true;
  }
  else if (key == "cuda-graphs") {
    if (v != "on" && v != "off") err = "cuda-graphs: expected on or off, got '" + v + "'";
    c.cuda_graphs = v == "on";
  }
  else if (key == "host-cache-mb") err = num(c.host_cache_mb);
  else if (key == "request-timeout") { err = num(n); c.request_timeout = std::chrono::seconds(n); }
  else if (key == "max-waiting") { err = num(n); c.max_waiting = static_cast<int32_t>(n); }
  else if (key == "max-in-flight-per-tenant") { err = num(n); c.max_in_flight_per_tenant = static_cast<int32_t>(n); }
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
  tune_allocator();  // before any thread starts
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

  // The tenant store trims the key (files end in a newline) and refuses an empty one.
  ServerConfig& config = f.config;
  // cuda sizes its one pool by --gpu-memory-fraction (0.9 unless --kv-cache-mb asks for fixed
  // sizes); cpu memory is sized by --kv-cache-mb and --lora-pool-mib alone.
  if (config.device == "cpu") {
    if (f.fraction_given) {
      std::fprintf(stderr, "quilt serve: --gpu-memory-fraction: sizes a cuda device's pool; on cpu use "
                           "--kv-cache-mb and --lora-pool-mib\n");
      return 2;
    }
  } else if (!f.fraction_given && !f.kv_cache_given) {
    config.gpu_memory_fraction = 0.9;
  }
  if (!f.admin_key_file.empty()) {
    auto key = read_file(f.admin_key_file);
    if (!key.ok()) return fail("admin key", key.status());
    config.admin_key = *key;
  } else if (const char* env = std::getenv("QUILT_ADMIN_KEY"); env && *env) {
    config.admin_key = env;
  }
  auto server = Server::start(config);
  if (!server.ok()) return fail("start", server.status());
  Server& s = **server;
  if (!s.generated_admin_key().empty()) {
    std::printf("admin key (shown once, store it now): %s\n", s.generated_admin_key().c_str());
  }
  std::printf("quilt serving %s on http://%s:%u (device %s, data %s)\n", s.model_id().c_str(),
              config.http.host.c_str(), s.port(), config.device.c_str(), config.data_dir.c_str());
  if (s.admin_port() != 0) {
    std::printf("quilt admin, metrics and health on http://%s:%u\n", config.http.host.c_str(),
                s.admin_port());
  }
  std::fflush(stdout);

  // Every few seconds until SIGTERM/SIGINT: flush usage, give memory freed since back to the
  // system (common/memory.h); then drain and exit 0.
  for (;;) {
    timespec period{5, 0};
    const int sig = sigtimedwait(&signals, nullptr, &period);
    if (sig == SIGTERM || sig == SIGINT) break;
    (void)s.flush_usage();
    release_free_memory();
  }
  std::printf("quilt: draining\n");
  std::fflush(stdout);
  if (Status st = s.stop(std::chrono::seconds(f.drain_timeout_s)); !st.ok()) return fail("flush", st);
  std::printf("quilt: stopped\n");
  return 0;
}

}  // namespace quilt::app
