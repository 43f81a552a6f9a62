// GET /admin/v1/usage?tenant=&adapter=&from=&to=&group_by=day|none over tenants::UsageLedger.
#include "admin/usage_routes.h"

#include <nlohmann/json.hpp>

#include "admin/route_helpers.h"
#include "gateway/http_server.h"

namespace quilt::admin {
namespace {

using gateway::HttpRequest;
using gateway::Platform;
using gateway::send_error;
using nlohmann::json;

// A day bound: "YYYY-MM-DD" (UTC), or unix seconds (the UTC day holding that second).
Result<int64_t> parse_bound(const std::string& name, const std::string& value) {
  if (std::optional<int64_t> day = tenants::parse_day(value)) return *day;
  const bool digits = !value.empty() && value.size() <= 12 &&
                      value.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) {
    return Status::InvalidArgument(name + ": must be a date (YYYY-MM-DD, UTC) or unix seconds");
  }
  return std::stoll(value) / tenants::kSecondsPerDay;
}

// Reads every query parameter; InvalidArgument naming the first bad or unknown one.
Status read_query(const Platform& p, const HttpRequest& req, tenants::UsageQuery& q) {
  for (const auto& [name, value] : req.query) {
    if (name == "tenant") {
      if (value.empty()) return Status::InvalidArgument("tenant: must not be empty");
      q.tenant = value;
    } else if (name == "adapter") {
      if (value.empty()) return Status::InvalidArgument("adapter: must not be empty");
      // The base model's usage is recorded under "" and shown under the model's id.
      q.adapter = value == p.model_id ? std::string() : value;
    } else if (name == "from" || name == "to") {
      QUILT_ASSIGN_OR_RETURN(int64_t day, parse_bound(name, value));
      (name == "from" ? q.from_day : q.to_day) = day;
    } else if (name == "group_by") {
      if (value != "day" && value != "none") {
        return Status::InvalidArgument("group_by: must be \"day\" or \"none\"");
      }
      q.by_day = value == "day";
    } else {
      return Status::InvalidArgument(name + ": unknown parameter (accepted: tenant, adapter, from, "
                                            "to, group_by)");
    }
  }
  if (q.from_day && q.to_day && *q.from_day > *q.to_day) {
    return Status::InvalidArgument("to: is before from");
  }
  return Status::OK();
}

}  // namespace

void add_usage_routes(gateway::Router& router, Platform& p) {
  add_admin_route(router, p, "GET", "/admin/v1/usage", [&p](HttpRequest& req, Writer w) {
    tenants::UsageQuery q;
    if (Status st = read_query(p, req, q); !st.ok()) {
      return send_error(*w, st, gateway::param_of(st));
    }
    json data = json::array();
    for (const tenants::UsageRow& row : p.usage->query(q)) {
      json r = {{"tenant", row.tenant},
                {"adapter", row.adapter.empty() ? p.model_id : row.adapter}};
      // Usage recorded before the ledger kept days has no day.
      if (q.by_day) r["day"] = row.day == tenants::kNoDay ? json(nullptr) : json(tenants::day_string(row.day));
      r["requests"] = row.counters.requests;
      r["prompt_tokens"] = row.counters.prompt_tokens;
      r["completion_tokens"] = row.counters.completion_tokens;
      data.push_back(std::move(r));
    }
    reply(*w, 200, {{"object", "list"}, {"data", data}});
  });
}

}  // namespace quilt::admin
