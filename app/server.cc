// Server: the order things open in (storage first, HTTP last) and close in (the reverse).
#include "app/server.h"

#include "admin/admin_routes.h"
#include "gateway/openai_routes.h"

namespace quilt::app {

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
  eo.kv_cache_bytes = c.kv_cache_mb << 20;
  eo.max_waiting = c.max_waiting;
  eo.max_in_flight_per_tenant = c.max_in_flight_per_tenant;
  auto eng = engine::Engine::create(c.model, eo);
  if (!eng.ok()) return eng.status().with_context("model " + c.model.string());
  s->engine_ = std::move(eng).value();
  auto registry = adapters::AdapterRegistry::open(*s->db_, s->engine_->config(), c.host_cache_mb << 20);
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
  s->blocking_ = std::make_unique<gateway::BlockingPool>(2);
  p.blocking = s->blocking_.get();
  p.model_id = std::filesystem::weakly_canonical(c.model).filename().string();
  p.upload_dir = c.data_dir / "uploads";
  std::error_code ec;
  std::filesystem::create_directories(p.upload_dir, ec);
  if (ec) return Status::IOError(p.upload_dir.string() + ": " + ec.message());

  s->router_ = std::make_unique<gateway::Router>();
  gateway::add_openai_routes(*s->router_, p);
  admin::add_admin_routes(*s->router_, p, s->ready_);
  admin::add_engine_metrics(p);
  gateway::ServerOptions http = c.http;
  http.upload_dir = p.upload_dir;
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
  http_->stop(drain);
  blocking_.reset();  // uploads still being validated finish (their answers go nowhere now)
  QUILT_RETURN_IF_ERROR(usage_->flush());
  return db_->flush();
}

Server::~Server() { (void)stop(std::chrono::milliseconds(1000)); }

}  // namespace quilt::app
