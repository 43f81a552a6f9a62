// Server: the order things open in (storage first, HTTP last) and close in (the reverse).
#include "app/server.h"

#include <algorithm>
#include <cstdint>

#include "admin/admin_routes.h"
#include "gateway/openai_routes.h"
#include "gateway/openapi/openapi_route.h"

namespace quilt::app {
namespace {

// Upload bodies and parts live in upload_dir only while their request does: whatever is there at
// start was left by a process that died (kill -9) mid-upload.
void remove_stale_uploads(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("quilt-upload-", 0) != 0 && name.rfind("quilt-part-", 0) != 0) continue;
    std::error_code ignored;
    std::filesystem::remove(entry.path(), ignored);
  }
}

// The largest magnitude a dtype holds: adapter values beyond it would be Inf on the device.
double max_finite(engine::DType dtype) {
  switch (dtype) {
    case engine::DType::kF16: return 65504.0;
    case engine::DType::kBF16: return 3.3895313892515355e38;
    case engine::DType::kF32:
    case engine::DType::kI8: break;  // int8 is for cpu weights only; adapters stay float there
  }
  return 3.4028234663852886e38;
}

// The admin listener serves operators and probers, a handful of connections: its own small
// pool, so that it answers whatever the public port is going through.
constexpr int kAdminThreads = 1;
constexpr int kAdminMaxConnections = 256;

}  // namespace

Result<std::unique_ptr<Server>> Server::start(const ServerConfig& c) {
  std::unique_ptr<Server> s(new Server());
  auto context = [](const char* what) { return [what](const Status& st) { return st.with_context(what); }; };
  {
    auto db = storage::Database::open(c.data_dir);
    if (!db.ok()) return context("storage")(db.status());
    s->db_ = std::move(db).value();
  }
  auto tenants = tenants::TenantStore::open(*s->db_);
  if (!tenants.ok()) return context("tenants")(tenants.status());
  s->tenants_ = std::move(tenants).value();
  auto usage = tenants::UsageLedger::open(*s->db_);
  if (!usage.ok()) return context("usage")(usage.status());
  s->usage_ = std::move(usage).value();
  auto generated = s->tenants_->ensure_admin_key(c.admin_key);
  if (!generated.ok()) return context("admin key")(generated.status());
  s->generated_admin_key_ = *generated;

  engine::EngineOptions eo;
  eo.device = c.device;
  eo.dtype = c.dtype;
  eo.kv_cache_bytes = c.kv_cache_mb << 20;
  eo.lora_pool_bytes = c.lora_pool_mib << 20;
  eo.gpu_memory_fraction = c.gpu_memory_fraction;
  eo.max_adapter_slots = c.max_loras;
  eo.max_model_len = static_cast<int32_t>(std::min<int64_t>(c.max_model_len, INT32_MAX));
  eo.max_waiting = c.max_waiting;
  eo.max_in_flight_per_tenant = c.max_in_flight_per_tenant;
  eo.max_lora_rank = c.max_lora_rank;
  eo.decode_graphs = c.cuda_graphs;
  eo.threads = c.threads;
  eo.quantization = c.quantization;
  auto eng = engine::Engine::create(c.model, eo);
  if (!eng.ok()) return eng.status().with_context("model " + c.model.string());
  s->engine_ = std::move(eng).value();
  adapters::AdapterLimits limits;
  limits.max_rank = s->engine_->options().max_lora_rank;
  limits.max_abs_value = max_finite(s->engine_->compute_dtype());
  auto registry =
      adapters::AdapterRegistry::open(*s->db_, s->engine_->config(), c.host_cache_mb << 20, limits);
  if (!registry.ok()) return context("adapters")(registry.status());
  s->registry_ = std::move(registry).value();

  gateway::Platform& p = s->platform_;
  p.engine = s->engine_.get();
  p.tenants = s->tenants_.get();
  p.limiter = &s->limiter_;
  p.usage = s->usage_.get();
  p.registry = s->registry_.get();
  p.metrics = &s->metrics_;
  p.request_timeout = c.request_timeout;
  p.metrics_key = c.metrics_key;
  s->blocking_ = std::make_unique<gateway::BlockingPool>(2);
  p.blocking = s->blocking_.get();
  p.model_id = std::filesystem::weakly_canonical(c.model).filename().string();
  p.upload_dir = c.data_dir / "uploads";
  std::error_code ec;
  std::filesystem::create_directories(p.upload_dir, ec);
  if (ec) return Status::IOError(p.upload_dir.string() + ": " + ec.message());
  remove_stale_uploads(p.upload_dir);

  s->router_ = std::make_unique<gateway::Router>();
  gateway::add_openai_routes(*s->router_, p);
  admin::add_health_routes(*s->router_, p, s->ready_);
  admin::add_engine_metrics(p);
  gateway::ServerOptions http = c.http;
  http.upload_dir = p.upload_dir;
  if (c.admin_port >= 0) {
    s->admin_router_ = std::make_unique<gateway::Router>();
    admin::add_admin_routes(*s->admin_router_, p);
    admin::add_health_routes(*s->admin_router_, p, s->ready_);
    gateway::add_openapi_route(*s->admin_router_);  // the document covers both ports' routes
    gateway::ServerOptions admin_http = http;
    admin_http.port = static_cast<uint16_t>(c.admin_port);
    admin_http.threads = kAdminThreads;
    admin_http.max_connections = kAdminMaxConnections;
    s->admin_http_ = std::make_unique<gateway::HttpServer>(admin_http, *s->admin_router_);
    QUILT_RETURN_IF_ERROR(s->admin_http_->start().with_context("listen (admin port)"));
  } else {
    admin::add_admin_routes(*s->router_, p);
  }
  s->http_ = std::make_unique<gateway::HttpServer>(http, *s->router_);
  QUILT_RETURN_IF_ERROR(s->http_->start().with_context("listen"));
  s->ready_ = true;
  return s;
}

Status Server::stop(std::chrono::milliseconds drain) {
  if (stopped_) return Status::OK();
  stopped_ = true;
  platform_.draining = true;
  ready_ = false;
  if (http_) http_->stop(drain);
  // The admin listener last: probers keep getting /readyz 503 while the public port drains.
  if (admin_http_) admin_http_->stop(std::chrono::milliseconds(1000));
  blocking_.reset();  // uploads still being validated finish (their answers go nowhere now)
  // Cold adapter loads still running finish, and their requests reach the engine, before it goes.
  if (registry_) registry_->drain();
  // Requests that outlived the drain end here, while the limiter, metrics and usage they settle
  // into are alive; nothing reaches the engine after this.
  engine_.reset();
  platform_.engine = nullptr;
  Status st = usage_ ? usage_->flush() : Status::OK();
  if (tenants_) {
    Status keys = tenants_->flush_key_use();
    if (st.ok()) st = keys;
  }
  if (db_) {
    Status flushed = db_->flush();
    if (st.ok()) st = flushed;
  }
  return st;
}

Server::~Server() { (void)stop(std::chrono::milliseconds(1000)); }

}  // namespace quilt::app
