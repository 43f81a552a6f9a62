// usage_command: `quilt usage`, the token ledger by tenant, adapter and (optionally) day.
#include <string>

#include "admin/cli/commands.h"
#include "admin/cli/output.h"

namespace quilt::admin::cli {
namespace {

using nlohmann::json;

struct Usage {
  ClientOptions client;
  std::string tenant, adapter, from, to, group_by;
};

int usage(const Usage& s) {
  std::string query;
  for (const auto& [key, value] : {std::pair{"tenant", &s.tenant}, std::pair{"adapter", &s.adapter},
                                   std::pair{"from", &s.from}, std::pair{"to", &s.to},
                                   std::pair{"group_by", &s.group_by}}) {
    if (!value->empty()) query += (query.empty() ? "?" : "&") + std::string(key) + "=" + url_encode(*value);
  }
  CallResult r = call(s.client, "GET", "/admin/v1/usage" + query);
  return print_result(s.client, r, [](const json& list) {
    return format_table({{"TENANT", "tenant"},
                         {"ADAPTER", "adapter"},
                         {"DAY", "day"},
                         {"REQUESTS", "requests"},
                         {"PROMPT_TOKENS", "prompt_tokens"},
                         {"COMPLETION_TOKENS", "completion_tokens"}},
                        list.value("data", json::array()));
  });
}

}  // namespace

void add_usage_command(CLI::App& root, Chosen& chosen) {
  auto s = std::make_shared<Usage>();
  CLI::App* c = root.add_subcommand("usage", "tokens used, by tenant and adapter (admin key)");
  add_client_options(c, s->client);
  c->callback([s, &chosen] { chosen = [s] { return usage(*s); }; });
  c->add_option("--tenant", s->tenant, "only this tenant (id)")->type_name("ID");
  c->add_option("--adapter", s->adapter, "only this adapter")->type_name("NAME");
  c->add_option("--from", s->from, "from this day on (YYYY-MM-DD)")->type_name("DAY");
  c->add_option("--to", s->to, "up to this day (YYYY-MM-DD)")->type_name("DAY");
  c->add_option("--group-by", s->group_by, "day: one row per day")->check(CLI::IsMember({"day"}))->type_name("day");
}

}  // namespace quilt::admin::cli
