// Everything a route handler reaches: the engine, tenants, adapters, metrics. Built by `serve`.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

#include "adapters/registry.h"
#include "gateway/blocking_pool.h"
#include "common/metrics.h"
#include "engine/engine.h"
#include "tenants/limiter.h"
#include "tenants/tenant_store.h"
#include "tenants/usage.h"

namespace quilt::gateway {

// Pointers are owned by the caller and outlive every route; all members are thread-safe.
struct Platform {
  engine::Engine* engine = nullptr;
  tenants::TenantStore* tenants = nullptr;
  tenants::Limiter* limiter = nullptr;
  tenants::UsageLedger* usage = nullptr;
  adapters::AdapterRegistry* registry = nullptr;
  Metrics* metrics = nullptr;
  BlockingPool* blocking = nullptr;      // uploads are validated and persisted here
  std::string model_id;                  // the base model's name in /v1/models and `model`
  std::string metrics_key;               // besides the admin key, opens /metrics ("" = none)
  std::filesystem::path upload_dir;      // where multipart parts go
  std::chrono::milliseconds request_timeout{600000};  // default and upper bound of a deadline
  std::atomic<bool> draining{false};     // set on SIGTERM: new requests get 503
  std::atomic<uint64_t> next_request_id{1};
};

}  // namespace quilt::gateway
