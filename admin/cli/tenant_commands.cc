// tenant_commands: `quilt tenants create|list|delete` and `quilt keys create|list|revoke`.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "admin/cli/commands.h"
#include "admin/cli/output.h"

namespace quilt::admin::cli {
namespace {

using nlohmann::json;

const std::vector<Column> kTenantColumns = {
    {"ID", "id"},
    {"NAME", "name"},
    {"WEIGHT", "weight"},
    {"MAX_CONCURRENT", "limits/max_concurrent"},
    {"REQUESTS/MIN", "limits/requests_per_minute"},
    {"TOKENS/MIN", "limits/tokens_per_minute"},
    {"CREATED", "created", true},
};

struct TenantCreate {
  ClientOptions client;
  std::string name;
  std::optional<double> weight;
  std::optional<int64_t> max_concurrent, requests_per_minute, tokens_per_minute;
  bool quiet = false;
};

int tenant_create(const TenantCreate& s) {
  json body = {{"name", s.name}};
  if (s.weight) body["weight"] = *s.weight;
  json limits = json::object();
  if (s.max_concurrent) limits["max_concurrent"] = *s.max_concurrent;
  if (s.requests_per_minute) limits["requests_per_minute"] = *s.requests_per_minute;
  if (s.tokens_per_minute) limits["tokens_per_minute"] = *s.tokens_per_minute;
  if (!limits.empty()) body["limits"] = limits;
  CallResult r = call(s.client, "POST", "/admin/v1/tenants", body);
  return print_result(s.client, r, [&](const json& t) {
    if (s.quiet) return cell_text(t.value("id", json())) + "\n";
    return format_table(kTenantColumns, json::array({t}));
  });
}

struct TenantList {
  ClientOptions client;
};

int tenant_list(const TenantList& s) {
  CallResult r = call(s.client, "GET", "/admin/v1/tenants");
  return print_result(s.client, r, [](const json& list) { return format_table(kTenantColumns, list.value("data", json::array())); });
}

struct TenantDelete {
  ClientOptions client;
  std::string id;
  bool cascade = false;
};

int tenant_delete(const TenantDelete& s) {
  std::string target = "/admin/v1/tenants/" + url_encode(s.id);
  if (s.cascade) target += "?cascade=true";
  CallResult r = call(s.client, "DELETE", target);
  return print_result(s.client, r, [&](const json&) { return "deleted tenant " + s.id + "\n"; });
}

const std::vector<Column> kKeyColumns = {
    {"KEY_ID", "key_id"},           {"NAME", "name"},
    {"SCOPE", "scope"},             {"CREATED", "created", true},
    {"EXPIRES_AT", "expires_at", true}, {"LAST_USED", "last_used", true},
};

struct KeyCreate {
  ClientOptions client;
  std::string tenant;
  std::string name;
  std::string scope;
  std::optional<int64_t> expires_in;
  bool quiet = false;
};

int key_create(const KeyCreate& s) {
  json body = json::object();
  if (!s.name.empty()) body["name"] = s.name;
  if (!s.scope.empty()) body["scope"] = s.scope;
  if (s.expires_in) body["expires_in"] = *s.expires_in;
  CallResult r = call(s.client, "POST", "/admin/v1/tenants/" + url_encode(s.tenant) + "/keys",
                      body.empty() ? json() : body);
  return print_result(s.client, r, [&](const json& k) {
    if (s.quiet) return cell_text(k.value("key", json())) + "\n";
    std::fprintf(stderr, "quilt: the key is shown once; the server keeps only its hash\n");
    return format_object(k, {"created", "expires_at", "last_used"});
  });
}

struct KeyList {
  ClientOptions client;
  std::string tenant;
};

int key_list(const KeyList& s) {
  CallResult r = call(s.client, "GET", "/admin/v1/tenants/" + url_encode(s.tenant) + "/keys");
  return print_result(s.client, r, [](const json& list) { return format_table(kKeyColumns, list.value("data", json::array())); });
}

struct KeyRevoke {
  ClientOptions client;
  std::string tenant;
  std::string key_id;
};

int key_revoke(const KeyRevoke& s) {
  CallResult r = call(s.client, "DELETE", "/admin/v1/tenants/" + url_encode(s.tenant) + "/keys/" + url_encode(s.key_id));
  return print_result(s.client, r, [&](const json&) { return "revoked key " + s.key_id + "\n"; });
}

}  // namespace

void add_tenant_commands(CLI::App& root, Chosen& chosen) {
  CLI::App* tenants = root.add_subcommand("tenants", "create, list and delete tenants (admin key)");
  tenants->require_subcommand(1);
  {
    auto s = std::make_shared<TenantCreate>();
    CLI::App* c = add_leaf(tenants, "create", "create a tenant; prints it (its id is what keys and adapters name)", s,
                           chosen, tenant_create);
    c->add_option("name", s->name, "the tenant's name")->required();
    c->add_option("--weight", s->weight, "its fair share against other tenants (default 1)")->type_name("W");
    c->add_option("--max-concurrent", s->max_concurrent, "requests in flight at once")->type_name("N");
    c->add_option("--requests-per-minute", s->requests_per_minute, "request rate limit")->type_name("N");
    c->add_option("--tokens-per-minute", s->tokens_per_minute, "token rate limit")->type_name("N");
    c->add_flag("-q,--quiet", s->quiet, "print only the new tenant's id");
  }
  add_leaf(tenants, "list", "list tenants with their weights and limits", std::make_shared<TenantList>(), chosen,
           tenant_list);
  {
    auto s = std::make_shared<TenantDelete>();
    CLI::App* c = add_leaf(tenants, "delete", "delete a tenant and its keys", s, chosen, tenant_delete);
    c->add_option("id", s->id, "the tenant's id")->required();
    c->add_flag("--cascade", s->cascade, "also delete the adapters it owns (refused without it while it owns any)");
  }

  CLI::App* keys = root.add_subcommand("keys", "issue, list and revoke a tenant's API keys (admin key)");
  keys->require_subcommand(1);
  {
    auto s = std::make_shared<KeyCreate>();
    CLI::App* c = add_leaf(keys, "create", "issue a key; it is printed once and stored only as a hash", s, chosen,
                           key_create);
    c->add_option("--tenant", s->tenant, "the tenant's id")->required()->type_name("ID");
    c->add_option("--name", s->name, "a name to recognise the key by")->type_name("NAME");
    c->add_option("--scope", s->scope, "inference (call the models; default) or deploy (push and manage the "
                                       "tenant's adapters)")
        ->check(CLI::IsMember({"inference", "deploy"}))
        ->type_name("SCOPE");
    c->add_option("--expires-in", s->expires_in, "seconds until the key stops working")
        ->check(CLI::PositiveNumber)
        ->type_name("S");
    c->add_flag("-q,--quiet", s->quiet, "print only the key");
  }
  {
    auto s = std::make_shared<KeyList>();
    CLI::App* c = add_leaf(keys, "list", "list a tenant's keys (names, scopes, expiry, last use; never the keys)", s,
                           chosen, key_list);
    c->add_option("--tenant", s->tenant, "the tenant's id")->required()->type_name("ID");
  }
  {
    auto s = std::make_shared<KeyRevoke>();
    CLI::App* c = add_leaf(keys, "revoke", "revoke a key: it fails from the next request on", s, chosen, key_revoke);
    c->add_option("--tenant", s->tenant, "the tenant's id")->required()->type_name("ID");
    c->add_option("key_id", s->key_id, "the key's id (from keys create or keys list)")->required();
  }
}

}  // namespace quilt::admin::cli
