// Adapter routes: uploads (hot deploys), listing, eviction, rollback, deletion.
#include "admin/adapter_routes.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "admin/route_helpers.h"
#include "gateway/http_server.h"
#include "gateway/multipart.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;
using gateway::Platform;
using gateway::ResponseWriter;
using gateway::param_of;
using gateway::send_error;
using nlohmann::json;

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

void add_adapter_routes(gateway::Router& router, Platform& p) {
  auto admin = [&](const std::string& method, const std::string& path, Handler h,
                   gateway::BodyMode mode = gateway::BodyMode::kMemory) {
    add_admin_route(router, p, method, path, std::move(h), mode);
  };
  admin("PUT", "/admin/v1/adapters/{name}",
        [&p](HttpRequest& r, Writer w) { upload_adapter(p, r, std::move(w)); }, gateway::BodyMode::kFile);
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
}

}  // namespace quilt::admin
