// adapter_commands: `quilt adapters push|list|show|activate|rollback|evict|delete`.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "admin/cli/commands.h"
#include "admin/cli/multipart.h"
#include "admin/cli/output.h"
#include "admin/cli/sha256_file.h"

namespace quilt::admin::cli {
namespace {

using nlohmann::json;

std::string adapter_path(const std::string& name) { return "/admin/v1/adapters/" + url_encode(name); }

// "device,host,storage": the tiers an adapter is resident in.
std::string residency(const json& a) {
  std::string out;
  if (auto it = a.find("resident"); it != a.end() && it->is_object()) {
    for (const auto& [tier, here] : it->items()) {
      if (here.is_boolean() && here.get<bool>()) out += (out.empty() ? "" : ",") + tier;
    }
  }
  return out.empty() ? "-" : out;
}

struct Push {
  ClientOptions client;
  std::filesystem::path dir;
  std::string name;
  std::string tenant;
  bool stage = false;
  bool shared = false;
  bool progress = false;
  std::vector<std::string> meta;  // k=v
};

int push(const Push& s) {
  const auto config = s.dir / "adapter_config.json";
  const auto weights = s.dir / "adapter_model.safetensors";
  json metadata = json::object();
  for (const std::string& kv : s.meta) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return usage_error("--meta '" + kv + "': expected KEY=VALUE");
    metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto sha = sha256_file(weights);
  if (!sha.ok()) return usage_error(sha.status().message() + " (a PEFT adapter folder holds adapter_config.json "
                                                             "and adapter_model.safetensors)");
  std::vector<std::pair<std::string, std::string>> fields;
  if (!s.tenant.empty()) fields.push_back({"tenant", s.tenant});
  if (s.shared) fields.push_back({"shared", "true"});
  if (s.stage) fields.push_back({"stage", "true"});
  if (!metadata.empty()) fields.push_back({"metadata", metadata.dump()});
  auto body = build_multipart(fields, {{"config", config}, {"weights", weights}});
  if (!body.ok()) return usage_error(body.status().message());

  ProgressBar bar(stderr);
  Progress progress;
  if (s.progress || isatty(STDERR_FILENO)) progress = [&bar](uint64_t sent, uint64_t total) { bar.update(sent, total); };
  CallResult r = call_raw(s.client, "PUT", adapter_path(s.name), std::move(body->pieces), body->content_type, progress);
  bar.finish();
  if (r.ok() && r.body.contains("sha256") && r.body["sha256"] != *sha) {
    std::fprintf(stderr, "quilt: warning: the server's sha256 %s differs from the local %s\n",
                 cell_text(r.body["sha256"]).c_str(), sha->c_str());
  }
  if (s.client.json) std::fprintf(stderr, "sha256 %s (computed locally)\n", sha->c_str());
  return print_result(s.client, r, [&](const json& v) {
    json shown = v;
    shown["local_sha256"] = *sha;
    return format_object(shown, {"created"});
  });
}

const std::vector<Column> kAdapterColumns = {
    {"NAME", "name"},        {"OWNER", "owner"},       {"SHARED", "shared"},
    {"LIVE", "live_version"}, {"SPLIT", "live"},       {"VERSIONS", "version_numbers"},
    {"RESIDENT", "residency"},
};

const std::vector<Column> kVersionColumns = {
    {"VERSION", "version"}, {"RANK", "rank"},       {"TARGET_MODULES", "target_modules"},
    {"BYTES", "bytes"},     {"STAGED", "staged"},   {"LIVE_SHARE", "live_share"},
    {"UPLOADED_BY", "uploaded_by"}, {"SHA256", "sha256"},
    {"CREATED", "created", true}, {"METADATA", "metadata"},
};

struct List {
  ClientOptions client;
};

int list(const List& s) {
  CallResult r = call(s.client, "GET", "/admin/v1/adapters");
  return print_result(s.client, r, [](const json& l) {
    json rows = json::array();
    for (json a : l.value("data", json::array())) {
      json numbers = json::array();
      for (const json& v : a.value("versions", json::array())) numbers.push_back(v.value("version", json()));
      a["version_numbers"] = numbers;
      a["residency"] = residency(a);
      rows.push_back(a);
    }
    return format_table(kAdapterColumns, rows);
  });
}

struct Show {
  ClientOptions client;
  std::string name;
};

// One adapter: its fields, then a table of its versions.
std::string format_adapter(const json& a) {
  json head = json::object();
  for (const auto& [key, value] : a.items()) {
    if (key != "versions" && key != "resident") head[key] = value;
  }
  head["resident"] = residency(a);
  return format_object(head) + "\n" + format_table(kVersionColumns, a.value("versions", json::array()));
}

int show(const Show& s) {
  CallResult r = call(s.client, "GET", adapter_path(s.name));
  return print_result(s.client, r, format_adapter);
}

struct VersionAction {
  ClientOptions client;
  std::string name;
  int64_t version = 0;
  const char* action;  // "activate" or "rollback"
};

int version_action(const VersionAction& s) {
  CallResult r = call(s.client, "POST", adapter_path(s.name) + "/" + s.action, {{"version", s.version}});
  return print_result(s.client, r, [](const json& v) {
    return v.contains("versions") ? format_adapter(v) : format_object(v);
  });
}

struct Split {
  ClientOptions client;
  std::string name;
  std::vector<std::string> shares;  // VERSION=SHARE
};

int split(const Split& s) {
  json shares = json::object();
  for (const std::string& vs : s.shares) {
    const size_t eq = vs.find('=');
    char* end = nullptr;
    const std::string version = vs.substr(0, eq == std::string::npos ? 0 : eq);
    const double share = eq == std::string::npos ? -1 : std::strtod(vs.c_str() + eq + 1, &end);
    if (version.empty() || version.find_first_not_of("0123456789") != std::string::npos || !end || *end != '\0' ||
        end == vs.c_str() + eq + 1 || share < 0) {
      return usage_error("'" + vs + "': expected VERSION=SHARE, e.g. 3=0.9");
    }
    shares[version] = share;
  }
  CallResult r = call(s.client, "PUT", adapter_path(s.name) + "/live", {{"split", shares}});
  return print_result(s.client, r, [](const json& v) {
    return v.contains("versions") ? format_adapter(v) : format_object(v);
  });
}

struct NameAction {
  ClientOptions client;
  std::string name;
  bool remove = false;  // DELETE the adapter; else evict it
};

int name_action(const NameAction& s) {
  CallResult r = s.remove ? call(s.client, "DELETE", adapter_path(s.name))
                          : call(s.client, "POST", adapter_path(s.name) + "/evict");
  return print_result(s.client, r, [&](const json&) {
    return (s.remove ? "deleted adapter " : "evicted adapter ") + s.name + "\n";
  });
}

}  // namespace

void add_adapter_commands(CLI::App& root, Chosen& chosen) {
  CLI::App* adapters = root.add_subcommand("adapters", "push, list and manage LoRA adapters (admin or deploy key)");
  adapters->require_subcommand(1);
  {
    auto s = std::make_shared<Push>();
    CLI::App* c = add_leaf(adapters, "push",
                           "upload a PEFT adapter folder as a new version (a hot deploy unless --stage); "
                           "prints the sha256 of its weights",
                           s, chosen, push);
    c->add_option("dir", s->dir, "the folder holding adapter_config.json and adapter_model.safetensors")
        ->required()
        ->check(CLI::ExistingDirectory);
    c->add_option("--name", s->name, "the adapter's name (what requests put in \"model\")")->required()->type_name("N");
    c->add_option("--tenant", s->tenant, "the owning tenant's id (a deploy key implies its own)")->type_name("ID");
    c->add_flag("--stage", s->stage, "upload and validate, but do not make it live (activate it later)");
    c->add_flag("--shared", s->shared, "usable by every tenant");
    c->add_option("--meta", s->meta, "metadata stored with the version (repeatable): run=42, base=llama3 ...")
        ->type_name("K=V");
    c->add_flag("--progress", s->progress, "draw the progress bar even when stderr is not a terminal");
  }
  add_leaf(adapters, "list", "list adapters: owner, live version, versions, residency", std::make_shared<List>(),
           chosen, list);
  {
    auto s = std::make_shared<Show>();
    CLI::App* c = add_leaf(adapters, "show", "one adapter with every version", s, chosen, show);
    c->add_option("name", s->name, "the adapter's name")->required();
  }
  for (const char* action : {"activate", "rollback"}) {
    auto s = std::make_shared<VersionAction>();
    s->action = action;
    CLI::App* c = add_leaf(adapters, action,
                           std::string(action) == "activate" ? "make a version (a staged one too) live"
                                                             : "make an earlier version live again",
                           s, chosen, version_action);
    c->add_option("name", s->name, "the adapter's name")->required();
    c->add_option("version", s->version, "the version number")->required()->check(CLI::PositiveNumber);
  }
  {
    auto s = std::make_shared<Split>();
    CLI::App* c = add_leaf(adapters, "split", "a canary: traffic shared between live versions (3=0.9 4=0.1)", s,
                           chosen, split);
    c->add_option("name", s->name, "the adapter's name")->required();
    c->add_option("shares", s->shares, "VERSION=SHARE for each version that takes traffic")->required();
  }
  {
    auto s = std::make_shared<NameAction>();
    CLI::App* c = add_leaf(adapters, "evict", "drop it from device and host memory (it stays stored)", s, chosen,
                           name_action);
    c->add_option("name", s->name, "the adapter's name")->required();
  }
  {
    auto s = std::make_shared<NameAction>();
    s->remove = true;
    CLI::App* c = add_leaf(adapters, "delete", "remove every version; requests in flight finish", s, chosen,
                           name_action);
    c->add_option("name", s->name, "the adapter's name")->required();
  }
}

}  // namespace quilt::admin::cli
