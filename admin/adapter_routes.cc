// Adapter routes: uploads (hot, staged, idempotent), listing, activation, canary splits, eviction,
// rollback, deletion. The admin key manages every adapter; a tenant's deploy key manages only
// that tenant's, and another tenant's adapter answers 404 as a missing one does.
#include "admin/adapter_routes.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "admin/route_helpers.h"
#include "gateway/auth.h"
#include "gateway/http_server.h"
#include "gateway/multipart.h"
#include "gateway/openai_routes.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;
using gateway::Platform;
using gateway::Principal;
using gateway::ResponseWriter;
using gateway::send_error;
using nlohmann::json;

using ManagerHandler = std::function<void(HttpRequest&, Writer, const Principal&)>;
// A handler of one adapter's route: its name, and the owner a deploy key requires (else nullopt).
using Owner = std::optional<std::string>;
using AdapterHandler = std::function<void(HttpRequest&, Writer, const std::string&, const Owner&)>;

Status not_found(const std::string& name) {
  return Status::NotFound("adapter '" + name + "' not found");
}

// The stored version as the API shows it; `share` is its part of the live traffic (0: none).
json version_json(const adapters::AdapterVersion& v, double share) {
  json metadata = json::parse(v.metadata, nullptr, /*allow_exceptions=*/false);
  const auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"version", v.version},
          {"rank", v.rank},
          {"target_modules", v.target_modules},
          {"bytes", v.bytes},
          {"created", v.created},
          {"sha256", or_null(v.sha256)},
          {"config_sha256", or_null(v.config_sha256)},
          {"uploaded_by", or_null(v.uploaded_by)},
          {"metadata", metadata.is_object() ? metadata : json::object()},
          {"live_share", share},
          {"staged", share == 0.0}};  // stored, taking no live traffic
}

json split_json(const adapters::LiveSplit& split) {
  json out = json::object();
  for (const auto& [version, share] : split) out[std::to_string(version)] = share;
  return out;
}

json adapter_json(Platform& p, const adapters::AdapterInfo& a) {
  const adapters::LiveSplit live = a.live();
  json versions = json::array();
  for (const auto& v : a.versions) {
    const auto it = live.find(v.version);
    versions.push_back(version_json(v, it == live.end() ? 0.0 : it->second));
  }
  const std::vector<std::string> resident = p.engine->resident_adapters();
  // The registry names the engine's weights after the adapter (any version).
  const bool on_device = std::any_of(resident.begin(), resident.end(), [&](const std::string& r) {
    return r == a.name || r.rfind(a.name + "@", 0) == 0;
  });
  return {{"name", a.name}, {"owner", a.owner}, {"shared", a.shared}, {"live_version", a.live_version},
          {"live", split_json(live)}, {"versions", versions},
          {"resident", {{"device", on_device}, {"host", a.host_resident}, {"storage", true}}}};
}

// The adapter `name` as `who` may see it: every adapter for the admin, the tenant's own for a
// deploy key; NotFound (the same answer for missing and foreign) otherwise.
Result<adapters::AdapterInfo> visible_adapter(Platform& p, const Principal& who, const std::string& name) {
  auto info = p.registry->info(name);
  if (!info.ok()) return info.status();
  if (!who.admin && info->owner != who.tenant_id) return not_found(name);
  return info;
}

// Answers 200 with the adapter as it is now.
void reply_adapter(Platform& p, const std::string& name, ResponseWriter& w) {
  auto info = p.registry->info(name);
  if (!info.ok()) return send_error(w, info.status());
  reply(w, 200, adapter_json(p, *info));
}

// Runs on the blocking pool: parsing and validating a large upload must not hold an I/O thread.
void deploy_upload(Platform& p, const Principal& who, const std::string& name,
                   const std::filesystem::path& body_file, const std::string& content_type, Writer w) {
  auto form = gateway::parse_multipart(body_file, content_type, {"weights"}, p.upload_dir);
  if (!form.ok()) return send_error(*w, form.status());
  auto& parts = form->parts;
  // A deploy key pushes for its own tenant, which the form may leave out.
  if (!who.admin && !parts.count("tenant")) parts["tenant"].value = who.tenant_id;
  for (const char* required : {"config", "weights", "tenant"}) {
    if (!parts.count(required)) {
      return send_error(*w, Status::InvalidArgument(std::string(required) + ": form part is required"), required);
    }
  }
  const std::string owner = parts["tenant"].value;
  if (!who.admin && owner != who.tenant_id) {
    return send_error(*w, Status::PermissionDenied("tenant: a deploy key pushes only for its own tenant"), "tenant");
  }
  if (!p.tenants->get(owner).ok()) {
    return send_error(*w, Status::InvalidArgument("tenant: no tenant with id '" + owner + "'"), "tenant");
  }
  adapters::DeployOptions options;
  options.uploaded_by = who.admin ? "admin" : who.key_id;
  for (const char* flag : {"shared", "stage"}) {
    if (!parts.count(flag)) continue;
    const std::string v = parts[flag].value;
    if (v != "true" && v != "false") {
      return send_error(*w, Status::InvalidArgument(std::string(flag) + ": must be true or false"), flag);
    }
    if (std::string(flag) == "stage") {
      options.stage = v == "true";
    } else if (!who.admin) {
      // Sharing makes an adapter usable by every tenant: beyond what a deploy key manages.
      return send_error(*w, Status::PermissionDenied("shared: only the admin key shares adapters"), "shared");
    } else {
      options.shared = v == "true";
    }
  }
  if (parts.count("metadata")) {
    if (parts["metadata"].value.empty() && !parts["metadata"].file.empty()) {
      return send_error(*w, Status::InvalidArgument("metadata: too large"), "metadata");
    }
    options.metadata = parts["metadata"].value;
  }
  std::string config = parts["config"].value;
  if (config.empty() && !parts["config"].file.empty()) {
    return send_error(*w, Status::InvalidArgument("config: too large"), "config");
  }
  auto out = p.registry->deploy(name, owner, config, parts["weights"].file, options);
  if (!out.ok()) {
    // Another tenant's name: a deploy key is told what a missing adapter would tell it.
    if (!who.admin && out.status().IsInvalidArgument() &&
        out.status().message().find("belongs to another tenant") != std::string::npos) {
      return send_error(*w, not_found(name));
    }
    const std::string& m = out.status().message();
    return send_error(*w, out.status(), m.rfind("metadata:", 0) == 0 ? "metadata" : "");
  }
  json body = version_json(out->version, 0.0);
  body.erase("live_share");
  body.erase("staged");
  body["name"] = name;
  body["live"] = out->live;
  body["staged"] = !out->live;
  body["existing"] = !out->created;
  reply(*w, out->created ? 201 : 200, body);
}

void upload_adapter(Platform& p, const Principal& who, HttpRequest& req, Writer w) {
  const std::string name = req.params.at("name");
  if (!adapters::AdapterRegistry::valid_name(name)) {
    return send_error(*w, Status::InvalidArgument("name: must match [A-Za-z0-9._-]{1,64} and not be . or .."), "name");
  }
  if (!who.admin) {
    // Refused before the body is parsed: another tenant's name is a 404.
    auto info = p.registry->info(name);
    if (info.ok() && info->owner != who.tenant_id) return send_error(*w, not_found(name));
  }
  // The owner keeps the uploaded file until the deploy is done with it.
  p.blocking->post([&p, who, name, file = req.body_file, owner = req.body_file_owner,
                    type = req.header("content-type"), w = std::move(w)] {
    deploy_upload(p, who, name, file, type, w);
  });
}

// {"version": N} → activate(N) (rollback is the same operation).
void activate_adapter(Platform& p, const std::string& name, const Owner& owner, HttpRequest& req, Writer w) {
  auto body = json_body(req, *w);
  if (!body) return;
  auto v = body->find("version");
  if (v == body->end() || !v->is_number_integer() || v->get<int64_t>() < 1) {
    return send_error(*w, Status::InvalidArgument("version: must be a positive integer"), "version");
  }
  if (Status st = p.registry->activate(name, v->get<int64_t>(), owner); !st.ok()) return send_error(*w, st, "version");
  reply_adapter(p, name, *w);
}

// {"split": {"3": 0.9, "4": 0.1}} → set_split.
void set_live_split(Platform& p, const std::string& name, const Owner& owner, HttpRequest& req, Writer w) {
  auto body = json_body(req, *w);
  if (!body) return;
  auto split = body->find("split");
  if (split == body->end() || !split->is_object() || split->empty()) {
    return send_error(*w, Status::InvalidArgument("split: must be an object of version → share"), "split");
  }
  adapters::LiveSplit parsed;
  for (const auto& [key, share] : split->items()) {
    const bool digits = !key.empty() && key.size() <= 18 &&
                        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoll(key) < 1) {
      return send_error(*w, Status::InvalidArgument("split: '" + key + "' is not a version number"), "split");
    }
    if (!share.is_number()) {
      return send_error(*w, Status::InvalidArgument("split: the share of version " + key + " must be a number"), "split");
    }
    parsed[std::stoll(key)] = share.get<double>();
  }
  if (parsed.size() != split->size()) {
    return send_error(*w, Status::InvalidArgument("split: a version is named twice"), "split");
  }
  if (Status st = p.registry->set_split(name, parsed, owner); !st.ok()) return send_error(*w, st, "split");
  reply_adapter(p, name, *w);
}

}  // namespace

void add_adapter_routes(gateway::Router& router, Platform& p) {
  // Metered; answers only the admin key or a deploy key (gateway/auth.h).
  auto route = [&](const std::string& method, const std::string& path, ManagerHandler h,
                   gateway::BodyMode mode = gateway::BodyMode::kMemory) {
    router.add(method, path,
               gateway::metered(p, path, [&p, h = std::move(h)](HttpRequest& req, Writer w) {
                 if (auto who = gateway::authenticate_adapter_manager(p, req, *w)) h(req, std::move(w), *who);
               }),
               mode);
  };
  // A route on one adapter: 404 unless `who` may manage it. The handler passes `owner` on to the
  // registry, which checks it again atomically with the change.
  auto on_adapter = [&](const std::string& method, const std::string& path, AdapterHandler h) {
    route(method, path, [&p, h = std::move(h)](HttpRequest& r, Writer w, const Principal& who) {
      const std::string name = r.params.at("name");
      auto info = visible_adapter(p, who, name);
      if (!info.ok()) return send_error(*w, info.status());
      h(r, std::move(w), name, who.admin ? std::nullopt : std::optional<std::string>(who.tenant_id));
    });
  };

  route("PUT", "/admin/v1/adapters/{name}",
        [&p](HttpRequest& r, Writer w, const Principal& who) { upload_adapter(p, who, r, std::move(w)); },
        gateway::BodyMode::kFile);
  route("GET", "/admin/v1/adapters", [&p](HttpRequest&, Writer w, const Principal& who) {
    json data = json::array();
    for (const auto& a : p.registry->list()) {
      if (who.admin || a.owner == who.tenant_id) data.push_back(adapter_json(p, a));
    }
    reply(*w, 200, {{"object", "list"}, {"data", data}});
  });
  on_adapter("GET", "/admin/v1/adapters/{name}",
             [&p](HttpRequest&, Writer w, const std::string& name, const Owner&) { reply_adapter(p, name, *w); });
  on_adapter("POST", "/admin/v1/adapters/{name}/evict",
             [&p](HttpRequest&, Writer w, const std::string& name, const Owner& owner) {
    if (Status st = p.registry->evict(name, owner); !st.ok()) return send_error(*w, st);
    p.engine->evict_adapter(name);
    reply(*w, 200, {{"name", name}, {"evicted", true}});
  });
  for (const char* verb : {"activate", "rollback"}) {
    on_adapter("POST", std::string("/admin/v1/adapters/{name}/") + verb,
               [&p](HttpRequest& r, Writer w, const std::string& name, const Owner& owner) {
                 activate_adapter(p, name, owner, r, std::move(w));
               });
  }
  on_adapter("PUT", "/admin/v1/adapters/{name}/live",
             [&p](HttpRequest& r, Writer w, const std::string& name, const Owner& owner) {
               set_live_split(p, name, owner, r, std::move(w));
             });
  on_adapter("DELETE", "/admin/v1/adapters/{name}",
             [&p](HttpRequest&, Writer w, const std::string& name, const Owner& owner) {
    if (Status st = p.registry->remove(name, owner); !st.ok()) return send_error(*w, st);
    p.engine->evict_adapter(name);
    reply(*w, 200, {{"name", name}, {"deleted", true}});
  });
}

}  // namespace quilt::admin
