// serve_settings: the table of `quilt serve` settings and their checks.
#include "app/serve_settings.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>

#include "app/demo_model.h"

namespace quilt::app {

ServeFlags::ServeFlags() { config.model = demo_model_dir(); }

namespace {

constexpr ServeSetting kSettings[] = {
    {"model", "DIR", "the base model (a Hugging Face folder); default: the bundled demo model"},
    {"data-dir", "DIR", "the RocksDB database of tenants, keys and adapters (default ./quilt-data)"},
    {"host", "HOST", "the address to listen on (default 127.0.0.1)"},
    {"port", "PORT", "the port to listen on (default 8080; 0 picks a free one)"},
    {"device", "DEVICE", "cpu, cuda or cuda:N (default cpu)"},
    {"dtype", "DTYPE", "compute dtype on cuda: float16 or bfloat16"},
    {"admin-key-file", "FILE", "a file holding the admin key (else QUILT_ADMIN_KEY, else one is generated into DATA-DIR/admin.key)"},
    {"admin-port", "PORT", "serve admin routes, metrics and health on a port of their own"},
    {"metrics-key", "KEY", "a key that may read /metrics (besides the admin key)"},
    {"threads", "N", "cpu: the engine's compute threads (GEMMs, attention; default: every core)"},
    {"http-threads", "N", "HTTP I/O threads (default: one per core)"},
    {"quantize", "none|int8", "cpu: keep the base model's matrices as int8, per-row scales"},
    {"drain-timeout", "S", "seconds to finish in-flight requests at SIGTERM/SIGINT (default 30)"},
    {"log-level", "LEVEL", "debug, info (default), warn or error"},
    {"log-format", "FORMAT", "text (default) or json: one JSON object per line, on stderr"},
    {"max-body-bytes", "N", "largest request body (default 8 MiB)"},
    {"max-upload-bytes", "N", "largest adapter upload (default 4 GiB)"},
    {"max-header-bytes", "N", "largest request head"},
    {"read-timeout", "S", "seconds to read a request (default 30)"},
    {"write-timeout", "S", "seconds a client may stall a response before it is dropped"},
    {"idle-timeout", "S", "seconds a keep-alive connection may idle (default 60)"},
    {"max-connections", "N", "open connections at once (default 4096)"},
    {"max-send-buffer-bytes", "N", "bytes queued for one slow client (at least 4096)"},
    {"kv-cache-mb", "N", "cpu: the KV cache; cuda: fixed pool sizes (default 256)"},
    {"host-cache-mb", "N", "host memory for adapters evicted from the device"},
    {"lora-pool-mib", "N", "the adapter page pool (default: from the model)"},
    {"gpu-memory-fraction", "F", "cuda: the pool is F of the free device memory (default 0.9)"},
    {"max-lora-rank", "N", "adapters of higher rank are refused at upload (default 128)"},
    {"max-loras", "N", "adapters resident at once (default 64)"},
    {"max-model-len", "N", "longest prompt + max_tokens (default: the model's context)"},
    {"cuda-graphs", "on|off", "capture decode steps as CUDA graphs (default on)"},
    {"request-timeout", "S", "seconds a request may run (default 600; past it: 503)"},
    {"max-waiting", "N", "requests queued in the engine, 503 beyond (default 4096)"},
    {"max-in-flight-per-tenant", "N", "requests in flight per tenant, 429 beyond (default 1024)"},
};

}  // namespace

std::span<const ServeSetting> serve_settings() { return kSettings; }

std::string apply_serve_setting(ServeFlags& f, const std::string& key, const std::string& v) {
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
  else if (key == "threads") { if ((err = num(n)).empty() && (n < 1 || n > 1024)) err = "threads: must be in [1, 1024]"; c.threads = static_cast<int32_t>(n); }
  else if (key == "http-threads") { err = num(n); c.http.threads = static_cast<int>(n); }
  else if (key == "quantize") {
    auto q = engine::parse_quantization(v);
    if (q.ok()) c.quantization = *q;
    else err = q.status().message();
  }
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
  else if (key == "log-level") {
    auto l = log::parse_level(v);
    if (l.ok()) f.log_level = *l;
    else err = l.status().message();
  }
  else if (key == "log-format") {
    auto l = log::parse_format(v);
    if (l.ok()) f.log_format = *l;
    else err = l.status().message();
  }
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

}  // namespace quilt::app
