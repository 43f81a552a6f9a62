// Tenant and key routes: thin translations between JSON and the tenant store.
#include "admin/tenant_routes.h"

#include <nlohmann/json.hpp>

#include "admin/route_helpers.h"
#include "admin/usage_routes.h"
#include "gateway/http_server.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;
using gateway::Platform;
using gateway::ResponseWriter;
using gateway::param_of;
using gateway::send_error;
using nlohmann::json;

json tenant_json(const tenants::Tenant& t) {
  return {{"id", t.id}, {"name", t.name}, {"weight", t.weight}, {"created", t.created},
          {"limits", {{"max_concurrent", t.limits.max_concurrent},
                      {"requests_per_minute", t.limits.requests_per_minute},
                      {"tokens_per_minute", t.limits.tokens_per_minute}}}};
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

json nullable_time(int64_t t) { return t > 0 ? json(t) : json(nullptr); }

json key_json(const tenants::KeyInfo& k) {
  return {{"key_id", k.key_id},
          {"name", k.name.empty() ? json(nullptr) : json(k.name)},
          {"scope", tenants::scope_name(k.scope)},
          {"created", k.created},
          {"expires_at", nullable_time(k.expires_at)},
          {"last_used", nullable_time(k.last_used)}};
}

// The optional body of POST .../keys: {"name", "scope", "expires_in"}. No body (or an empty one)
// makes an unnamed inference key that never expires.
Status read_key_options(const HttpRequest& req, tenants::KeyOptions& options, std::string& param) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) return Status::OK();
  const json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::InvalidArgument("request body must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    param = key;
    if (key == "name") {
      if (!value.is_string()) return Status::InvalidArgument("name: must be a string");
      options.name = value.get<std::string>();
      if (options.name.empty()) return Status::InvalidArgument("name: must not be empty");
    } else if (key == "scope") {
      std::optional<tenants::KeyScope> scope =
          value.is_string() ? tenants::parse_scope(value.get<std::string>()) : std::nullopt;
      if (!scope) return Status::InvalidArgument("scope: must be \"inference\" or \"deploy\"");
      options.scope = *scope;
    } else if (key == "expires_in") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
          value.get<int64_t>() > tenants::kMaxKeyLifetimeSeconds) {
        return Status::InvalidArgument("expires_in: must be an integer number of seconds in [1, " +
                                       std::to_string(tenants::kMaxKeyLifetimeSeconds) + "]");
      }
      options.expires_in = value.get<int64_t>();
    } else {
      return Status::InvalidArgument(key + ": unknown field (accepted: name, scope, expires_in)");
    }
  }
  param.clear();
  return Status::OK();
}

void create_key(Platform& p, HttpRequest& req, Writer w) {
  tenants::KeyOptions options;
  std::string param;
  if (Status st = read_key_options(req, options, param); !st.ok()) return send_error(*w, st, param);
  auto key = p.tenants->create_key(req.params.at("id"), options);
  if (!key.ok()) return send_error(*w, key.status(), param_of(key.status()));
  json out = key_json(key->info);
  out["key"] = key->key;
  reply(*w, 201, out);
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

// The names of the adapters `tenant_id` owns.
std::vector<std::string> owned_adapters(Platform& p, const std::string& tenant_id) {
  std::vector<std::string> names;
  for (const auto& a : p.registry->list())
    if (a.owner == tenant_id) names.push_back(a.name);
  return names;
}

// DELETE /admin/v1/tenants/{id}[?cascade=true]: refused (409) while the tenant owns adapters,
// unless cascade, which removes them first (a failure there leaves the tenant and its keys, so the
// call can be repeated). Usage stays in the ledger: it is billing data.
void delete_tenant(Platform& p, HttpRequest& req, Writer w) {
  const std::string& id = req.params.at("id");
  bool cascade = false;
  for (const auto& [name, value] : req.query) {
    if (name != "cascade") {
      return send_error(*w, Status::InvalidArgument(name + ": unknown parameter (accepted: cascade)"), name);
    }
    if (value != "true" && value != "false") {
      return send_error(*w, Status::InvalidArgument("cascade: must be true or false"), "cascade");
    }
    cascade = value == "true";
  }
  if (auto t = p.tenants->get(id); !t.ok()) return send_error(*w, t.status());
  std::vector<std::string> adapters = owned_adapters(p, id);
  if (!adapters.empty() && !cascade) {
    std::string names;
    for (size_t i = 0; i < adapters.size() && i < 5; ++i) names += (i ? ", " : "") + adapters[i];
    if (adapters.size() > 5) names += ", ...";
    return send_error(*w, 409,
                      "tenant '" + id + "' owns " + std::to_string(adapters.size()) + " adapter" +
                          (adapters.size() == 1 ? "" : "s") + " (" + names +
                          "): delete them first, or pass ?cascade=true to delete them with it",
                      "conflict_error");
  }
  for (const auto& name : adapters) {
    Status st = p.registry->remove(name);
    if (!st.ok() && !st.IsNotFound()) return send_error(*w, st.with_context("adapter " + name));
  }
  if (Status st = p.tenants->remove(id); !st.ok()) return send_error(*w, st);
  json out = {{"id", id}, {"deleted", true}};
  if (cascade) out["deleted_adapters"] = adapters;
  reply(*w, 200, out);
}

}  // namespace

void add_tenant_routes(gateway::Router& router, Platform& p) {
  auto admin = [&](const std::string& method, const std::string& path, Handler h,
                   gateway::BodyMode mode = gateway::BodyMode::kMemory) {
    add_admin_route(router, p, method, path, std::move(h), mode);
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
  admin("DELETE", "/admin/v1/tenants/{id}", [&p](HttpRequest& r, Writer w) { delete_tenant(p, r, std::move(w)); });
  admin("POST", "/admin/v1/tenants/{id}/keys", [&p](HttpRequest& r, Writer w) { create_key(p, r, std::move(w)); });
  admin("GET", "/admin/v1/tenants/{id}/keys", [&p](HttpRequest& r, Writer w) {
    auto keys = p.tenants->list_keys(r.params.at("id"));
    if (!keys.ok()) return send_error(*w, keys.status());
    json data = json::array();
    for (const auto& k : *keys) data.push_back(key_json(k));
    reply(*w, 200, {{"object", "list"}, {"data", data}});
  });
  add_usage_routes(router, p);
  admin("DELETE", "/admin/v1/tenants/{id}/keys/{key_id}", [&p](HttpRequest& r, Writer w) {
    if (Status st = p.tenants->revoke_key(r.params.at("id"), r.params.at("key_id")); !st.ok()) {
      return send_error(*w, st);
    }
    reply(*w, 200, {{"key_id", r.params.at("key_id")}, {"revoked", true}});
  });
}

}  // namespace quilt::admin
