// Admin handlers: thin translations between JSON and the tenant store and adapter registry.
#include "admin/admin_routes.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <nlohmann/json.hpp>

#include "common/memory.h"
#include "gateway/auth.h"
#include "gateway/http_server.h"
#include "gateway/multipart.h"
#include "gateway/openai_routes.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;
using gateway::Platform;
using gateway::ResponseWriter;
using gateway::param_of;
using gateway::send_error;
using nlohmann::json;
using Writer = std::shared_ptr<ResponseWriter>;

json tenant_json(const tenants::Tenant& t) {
  return {{"id", t.id}, {"name", t.name}, {"weight", t.weight}, {"created", t.created},
          {"limits", {{"max_concurrent", t.limits.max_concurrent},
                      {"requests_per_minute", t.limits.requests_per_minute},
                      {"tokens_per_minute", t.limits.tokens_per_minute}}}};
}

void reply(ResponseWriter& w, int status, const json& body) {
  w.send(status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// The JSON object body of a request, or an answered error.
std::optional<json> json_body(const HttpRequest& req, ResponseWriter& w) {
  if (!gateway::require_json(req, w)) return std::nullopt;
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    send_error(w, Status::InvalidArgument("request body must be a JSON object"));
    return std::nullopt;
  }
  return j;
}

// Reads "weight" and "limits" when present; InvalidArgument naming the field otherwise.
Status read_weight_and_limits(const json& j, std::optional<double>& weight,
                              std::optional<tenants::Limits>& limits, std::string& param,
                              const tenants::Limits& base) {
  if (auto it = j.find("weight"); it != j.end()) {
    param = "weight";
    if (!it->is_number()) return Status::InvalidArgument("weight: must be a number");
    weight = it->get<double>();
  }
  if (auto it = j.find("limits"); it != j.end()) {
    param = "limits";
    if (!it->is_object()) return Status::InvalidArgument("limits: must be an object");
    tenants::Limits l = base;
    for (auto [key, field] : {std::pair{"max_concurrent", &l.max_concurrent},
                              std::pair{"requests_per_minute", &l.requests_per_minute},
                              std::pair{"tokens_per_minute", &l.tokens_per_minute}}) {
      if (auto f = it->find(key); f != it->end()) {
        param = std::string("limits.") + key;
        if (!f->is_number_integer()) return Status::InvalidArgument(param + ": must be an integer");
        *field = f->get<int64_t>();
      }
    }
    for (const auto& [key, _] : it->items()) {
      if (key != "max_concurrent" && key != "requests_per_minute" && key != "tokens_per_minute") {
        param = "limits." + key;
        return Status::InvalidArgument(param + ": unknown limit");
      }
    }
    limits = l;
  }
  param.clear();
  return Status::OK();
}

void create_tenant(Platform& p, HttpRequest& req, Writer w) {
  auto body = json_body(req, *w);
  if (!body) return;
  auto name = body->find("name");
  if (name == body->end() || !name->is_string()) {
    return send_error(*w, Status::InvalidArgument("name: must be a string"), "name");
  }
  std::optional<double> weight;
  std::optional<tenants::Limits> limits;
  std::string param;
  if (Status st = read_weight_and_limits(*body, weight, limits, param, {}); !st.ok()) {
    return send_error(*w, st, param);
  }
  auto t = p.tenants->create(name->get<std::string>(), weight.value_or(1.0), limits.value_or(tenants::Limits{}));
  if (!t.ok()) return send_error(*w, t.status(), param_of(t.status()));
  reply(*w, 201, tenant_json(*t));
}

void patch_tenant(Platform& p, HttpRequest& req, Writer w) {
  auto body = json_body(req, *w);
  if (!body) return;
  auto current = p.tenants->get(req.params.at("id"));
  if (!current.ok()) return send_error(*w, current.status());
  std::optional<double> weight;
  std::optional<tenants::Limits> limits;
  std::string param;
  if (Status st = read_weight_and_limits(*body, weight, limits, param, current->limits); !st.ok()) {
    return send_error(*w, st, param);
  }
  auto t = p.tenants->update(req.params.at("id"), weight, limits);
  if (!t.ok()) return send_error(*w, t.status(), param_of(t.status()));
  reply(*w, 200, tenant_json(*t));
}

json adapter_json(Platform& p, const adapters::AdapterInfo& a) {
  json versions = json::array();
  for (const auto& v : a.versions) {
    versions.push_back({{"version", v.version}, {"rank", v.rank}, {"target_modules", v.target_modules},
                        {"bytes", v.bytes}, {"created", v.created}});
  }
  const std::vector<std::string> resident = p.engine->resident_adapters();
  // The registry names the engine's weights after the adapter (any version).
  const bool on_device = std::any_of(resident.begin(), resident.end(), [&](const std::string& r) {
    return r == a.name || r.rfind(a.name + "@", 0) == 0;
  });
  return {{"name", a.name}, {"owner", a.owner}, {"shared", a.shared}, {"live_version", a.live_version},
          {"versions", versions},
          {"resident", {{"device", on_device}, {"host", a.host_resident}, {"storage", true}}}};
}

// Runs on the blocking pool: parsing and validating a large upload must not hold an I/O thread.
void deploy_upload(Platform& p, const std::string& name, const std::filesystem::path& body_file,
                   const std::string& content_type, Writer w) {
  auto form = gateway::parse_multipart(body_file, content_type, {"weights"}, p.upload_dir);
  if (!form.ok()) return send_error(*w, form.status());
  auto& parts = form->parts;
  for (const char* required : {"config", "weights", "tenant"}) {
    if (!parts.count(required)) {
      return send_error(*w, Status::InvalidArgument(std::string(required) + ": form part is required"), required);
    }
  }
  const std::string owner = parts["tenant"].value;
  if (!p.tenants->get(owner).ok()) {
    return send_error(*w, Status::InvalidArgument("tenant: no tenant with id '" + owner + "'"), "tenant");
  }
  bool shared = false;
  if (parts.count("shared")) {
    const std::string v = parts["shared"].value;
    if (v != "true" && v != "false") {
      return send_error(*w, Status::InvalidArgument("shared: must be true or false"), "shared");
    }
    shared = v == "true";
  }
  std::string config = parts["config"].value;
  if (config.empty() && !parts["config"].file.empty()) {
    return send_error(*w, Status::InvalidArgument("config: too large"), "config");
  }
  auto version = p.registry->deploy(name, owner, shared, config, parts["weights"].file);
  if (!version.ok()) return send_error(*w, version.status());
  reply(*w, 201, {{"name", name}, {"version", version->version}, {"rank", version->rank},
                  {"target_modules", version->target_modules}, {"bytes", version->bytes}});
}

void upload_adapter(Platform& p, HttpRequest& req, Writer w) {
  const std::string name = req.params.at("name");
  if (!adapters::AdapterRegistry::valid_name(name)) {
    return send_error(*w, Status::InvalidArgument("name: must match [A-Za-z0-9._-]{1,64} and not be . or .."), "name");
  }
  // The owner keeps the uploaded file until the deploy is done with it.
  p.blocking->post([&p, name, file = req.body_file, owner = req.body_file_owner,
                    type = req.header("content-type"), w = std::move(w)] {
    deploy_upload(p, name, file, type, w);
  });
}

void rollback_adapter(Platform& p, HttpRequest& req, Writer w) {
  auto body = json_body(req, *w);
  if (!body) return;
  auto v = body->find("version");
  if (v == body->end() || !v->is_number_integer() || v->get<int64_t>() < 1) {
    return send_error(*w, Status::InvalidArgument("version: must be a positive integer"), "version");
  }
  const std::string name = req.params.at("name");
  if (Status st = p.registry->rollback(name, v->get<int64_t>()); !st.ok()) return send_error(*w, st, "version");
  auto info = p.registry->info(name);
  if (!info.ok()) return send_error(*w, info.status());
  reply(*w, 200, adapter_json(p, *info));
}

}  // namespace

void add_admin_routes(gateway::Router& router, Platform& p) {
  // Every admin route checks the admin key first.
  auto admin = [&](const std::string& method, const std::string& path,
                   std::function<void(HttpRequest&, Writer)> h,
                   gateway::BodyMode mode = gateway::BodyMode::kMemory) {
    router.add(method, path,
               gateway::metered(p, path, [&p, h = std::move(h)](HttpRequest& req, Writer w) {
                 if (gateway::authenticate_admin(p, req, *w)) h(req, std::move(w));
               }),
               mode);
  };
  admin("POST", "/admin/v1/tenants", [&p](HttpRequest& r, Writer w) { create_tenant(p, r, std::move(w)); });
  admin("GET", "/admin/v1/tenants", [&p](HttpRequest&, Writer w) {
    json data = json::array();
    for (const auto& t : p.tenants->list()) data.push_back(tenant_json(t));
    reply(*w, 200, {{"object", "list"}, {"data", data}});
  });
  admin("GET", "/admin/v1/tenants/{id}", [&p](HttpRequest& r, Writer w) {
    auto t = p.tenants->get(r.params.at("id"));
    if (!t.ok()) return send_error(*w, t.status());
    reply(*w, 200, tenant_json(*t));
  });
  admin("PATCH", "/admin/v1/tenants/{id}", [&p](HttpRequest& r, Writer w) { patch_tenant(p, r, std::move(w)); });
  admin("DELETE", "/admin/v1/tenants/{id}", [&p](HttpRequest& r, Writer w) {
    if (Status st = p.tenants->remove(r.params.at("id")); !st.ok()) return send_error(*w, st);
    reply(*w, 200, {{"id", r.params.at("id")}, {"deleted", true}});
  });
  admin("POST", "/admin/v1/tenants/{id}/keys", [&p](HttpRequest& r, Writer w) {
    auto key = p.tenants->create_key(r.params.at("id"));
    if (!key.ok()) return send_error(*w, key.status());
    reply(*w, 201, {{"key_id", key->key_id}, {"key", key->key}});
  });
  admin("DELETE", "/admin/v1/tenants/{id}/keys/{key_id}", [&p](HttpRequest& r, Writer w) {
    if (Status st = p.tenants->revoke_key(r.params.at("id"), r.params.at("key_id")); !st.ok()) {
      return send_error(*w, st);
    }
    reply(*w, 200, {{"key_id", r.params.at("key_id")}, {"revoked", true}});
  });

  admin("PUT", "/admin/v1/adapters/{name}", [&p](HttpRequest& r, Writer w) { upload_adapter(p, r, std::move(w)); },
        gateway::BodyMode::kFile);
  admin("GET", "/admin/v1/adapters", [&p](HttpRequest&, Writer w) {
    json data = json::array();
    for (const auto& a : p.registry->list()) data.push_back(adapter_json(p, a));
    reply(*w, 200, {{"object", "list"}, {"data", data}});
  });
  admin("GET", "/admin/v1/adapters/{name}", [&p](HttpRequest& r, Writer w) {
    auto info = p.registry->info(r.params.at("name"));
    if (!info.ok()) return send_error(*w, info.status());
    reply(*w, 200, adapter_json(p, *info));
  });
  admin("POST", "/admin/v1/adapters/{name}/evict", [&p](HttpRequest& r, Writer w) {
    const std::string name = r.params.at("name");
    if (Status st = p.registry->evict(name); !st.ok()) return send_error(*w, st);
    p.engine->evict_adapter(name);
    reply(*w, 200, {{"name", name}, {"evicted", true}});
  });
  admin("POST", "/admin/v1/adapters/{name}/rollback",
        [&p](HttpRequest& r, Writer w) { rollback_adapter(p, r, std::move(w)); });
  admin("DELETE", "/admin/v1/adapters/{name}", [&p](HttpRequest& r, Writer w) {
    const std::string name = r.params.at("name");
    if (Status st = p.registry->remove(name); !st.ok()) return send_error(*w, st);
    p.engine->evict_adapter(name);
    reply(*w, 200, {{"name", name}, {"deleted", true}});
  });

  router.add("GET", "/metrics", [&p](HttpRequest& req, Writer w) {
    if (!gateway::authenticate_metrics(p, req, *w)) return;
    w->send(200, "text/plain; version=0.0.4", p.metrics->render());
  });
}

void add_health_routes(gateway::Router& router, Platform& p, const std::atomic<bool>& ready) {
  router.add("GET", "/healthz", [](HttpRequest&, Writer w) { reply(*w, 200, {{"status", "ok"}}); });
  router.add("GET", "/readyz", [&ready, &p](HttpRequest&, Writer w) {
    if (ready && !p.draining) return reply(*w, 200, {{"status", "ready"}});
    send_error(*w, 503, "not ready", "overloaded_error", "", {{"Retry-After", "1"}});
  });
}

void add_engine_metrics(Platform& p) {
  Metrics& m = *p.metrics;
  m.describe("quilt_http_requests_total", "counter", "HTTP requests by route and status");
  m.describe("quilt_prompt_tokens_total", "counter", "Prompt tokens by tenant and adapter");
  m.describe("quilt_completion_tokens_total", "counter", "Generated tokens by tenant and adapter");
  m.describe("quilt_time_to_first_token_seconds", "histogram", "Time from admission to the first token");
  m.describe("quilt_inter_token_latency_seconds", "histogram", "Time between tokens of a request");
  m.describe("quilt_queue_depth", "gauge", "Requests waiting for the engine");
  m.describe("quilt_running_requests", "gauge", "Requests holding KV memory");
  m.describe("quilt_batch_tokens", "gauge", "Tokens in the last engine step");
  m.describe("quilt_engine_steps_total", "counter", "Engine steps");
  m.describe("quilt_engine_step_seconds_total", "counter", "Wall time spent in engine steps");
  m.describe("quilt_kv_blocks_in_use", "gauge", "KV cache blocks in use");
  m.describe("quilt_kv_blocks_total", "gauge", "KV cache blocks");
  m.describe("quilt_adapters_resident", "gauge", "Adapters resident per tier");
  m.describe("quilt_process_resident_bytes", "gauge", "Resident memory of the server process");
  m.on_scrape([&p](Metrics& mm) {
    mm.set("quilt_process_resident_bytes", {}, static_cast<double>(resident_bytes()));
    const engine::EngineStats s = p.engine->stats();
    mm.set("quilt_queue_depth", {}, s.waiting);
    mm.set("quilt_running_requests", {}, s.running);
    mm.set("quilt_batch_tokens", {}, s.last_batch_tokens);
    mm.set("quilt_engine_steps_total", {}, static_cast<double>(s.steps));
    mm.set("quilt_engine_step_seconds_total", {}, s.step_seconds_total);
    mm.set("quilt_kv_blocks_in_use", {}, s.kv_blocks_used);
    mm.set("quilt_kv_blocks_total", {}, s.kv_blocks_total);
    int64_t host = 0, stored = 0;
    for (const auto& a : p.registry->list()) {
      ++stored;
      host += a.host_resident ? 1 : 0;
    }
    mm.set("quilt_adapters_resident", {{"tier", "device"}}, s.adapters_resident);
    mm.set("quilt_adapters_resident", {{"tier", "host"}}, static_cast<double>(host));
    mm.set("quilt_adapters_resident", {{"tier", "storage"}}, static_cast<double>(stored));
  });
}

}  // namespace quilt::admin
