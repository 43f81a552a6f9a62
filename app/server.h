// The whole platform wired together: storage, tenants, registry, engine, routes, HTTP server.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/metrics.h"
#include "engine/engine.h"
#include "gateway/http_server.h"
#include "gateway/platform.h"
#include "storage/database.h"

namespace quilt::app {

struct ServerConfig {
  std::filesystem::path model;
  std::filesystem::path data_dir = "quilt-data";
  std::string device = "cpu";
  engine::DType dtype = engine::DType::kF16;  // what a cuda device computes in
  std::optional<std::string> admin_key;  // from --admin-key-file or QUILT_ADMIN_KEY
  std::string metrics_key;  // --metrics-key: a scraper's key for /metrics (the admin key works too)
  gateway::ServerOptions http;
  // --admin-port: the admin API, /metrics, /healthz and /readyz on a listener of their own (its
  // own threads and connection limit), so a flood of the public port never starves a prober or
  // an operator; the public port then serves no admin route and no /metrics. -1: none.
  int admin_port = -1;
  // The paged memory (engine/memory/memory_plan.h). cpu: the KV cache and the adapter pool.
  // cuda: one pool of both; gpu_memory_fraction > 0 sizes it as that share of the device less
  // the weights and activations (serve's default 0.9), 0 as kv_cache_mb + lora_pool_mib.
  int64_t kv_cache_mb = 256;
  int64_t lora_pool_mib = 0;          // 0: four rank-64 all-module adapters of the model, >= 256
  double gpu_memory_fraction = 0;
  int32_t max_loras = 64;             // adapters resident at once
  int64_t max_model_len = 0;          // prompt + max_tokens at most; 0: the model's context
  int64_t host_cache_mb = 1024;
  std::chrono::seconds request_timeout{600};
  int32_t max_waiting = 4096;               // engine queue, all tenants (503 beyond)
  int32_t max_in_flight_per_tenant = 1024;  // one tenant's queued + running (429 beyond)
  int32_t max_lora_rank = 128;              // adapters of higher rank are refused at upload (422)
  bool cuda_graphs = true;                  // cuda: decode steps replay CUDA graphs (--cuda-graphs)
  int32_t threads = 0;                      // cpu: engine compute threads (--threads); 0: every core
  // --quantize int8 (cpu): the base model's matrices as int8 with per-row scales.
  engine::WeightQuantization quantization = engine::WeightQuantization::kNone;
};

class Server {
 public:
  // Opens everything and starts listening. Errors name the part that failed.
  static Result<std::unique_ptr<Server>> start(const ServerConfig& config);
  ~Server();  // stop() if still running

  uint16_t port() const { return http_->port(); }
  // The admin listener's port; 0 without --admin-port.
  uint16_t admin_port() const { return admin_http_ ? admin_http_->port() : 0; }
  // The admin key generated at first start (to print once); empty when one was configured/stored.
  const std::string& generated_admin_key() const { return generated_admin_key_; }
  gateway::Platform& platform() { return platform_; }
  const std::string& model_id() const { return platform_.model_id; }

  // Usage counters and keys' last-use times, both kept in memory between flushes.
  Status flush_usage() {
    Status keys = platform_.tenants->flush_key_use();
    Status usage = platform_.usage->flush();
    return usage.ok() ? keys : usage;
  }
  // Stops taking requests (503), lets in-flight ones finish within `drain`, ends the ones left
  // (their limiter slots and usage are settled before this returns), flushes storage.
  // Safe on a server that start() left half-built.
  Status stop(std::chrono::milliseconds drain);

 private:
  Server() = default;

  // Destroyed bottom-up. Every part is declared after what it reaches: the engine's final events
  // (requests aborted by ~Engine) reach the limiter, metrics, usage and platform, so those are
  // declared before it and outlive it. stop() ends the engine explicitly anyway.
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<tenants::TenantStore> tenants_;
  std::unique_ptr<tenants::UsageLedger> usage_;
  tenants::Limiter limiter_;
  Metrics metrics_;
  gateway::Platform platform_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<adapters::AdapterRegistry> registry_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<gateway::BlockingPool> blocking_;
  std::unique_ptr<gateway::Router> router_;
  std::unique_ptr<gateway::Router> admin_router_;  // with --admin-port
  std::unique_ptr<gateway::HttpServer> http_;
  std::unique_ptr<gateway::HttpServer> admin_http_;  // with --admin-port
  std::string generated_admin_key_;
  bool stopped_ = false;
};

}  // namespace quilt::app
