// Tenant and key routes: thin translations between JSON and the tenant store.
#include "admin/tenant_routes.h"

#include <nlohmann/json.hpp>

#include "admin/route_helpers.h"
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
}

}  // namespace quilt::admin
