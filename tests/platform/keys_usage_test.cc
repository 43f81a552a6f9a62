// Keys with names, scopes and expiry; the usage route; cascading tenant deletion; rate-limit
// headers. Over HTTP against the whole platform on a real RocksDB, restarts included.
#include <chrono>
#include <thread>

#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

json base_body(const std::string& model, int max_tokens = 3) {
  return {{"model", model}, {"prompt", "The quick brown fox"}, {"max_tokens", max_tokens},
          {"temperature", 0}, {"ignore_eos", true}};
}

std::string today() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

class KeysUsageTest : public ServerTest {
 protected:
  std::string new_tenant(const std::string& name, json limits = json::object()) {
    json t = call_json("POST", "/admin/v1/tenants", kAdminKey, {{"name", name}, {"limits", limits}}, 201);
    return t["id"];
  }
  json new_key(const std::string& tenant, const json& body) {
    return call_json("POST", "/admin/v1/tenants/" + tenant + "/keys", kAdminKey, body, 201);
  }
  json list_keys(const std::string& tenant) {
    return call_json("GET", "/admin/v1/tenants/" + tenant + "/keys", kAdminKey, nullptr, 200);
  }
  // The error's param of a 400, after checking the status.
  std::string bad_param(const std::string& method, const std::string& path, const std::string& body = "") {
    HttpResponse r = call(method, path, kAdminKey, body);
    EXPECT_EQ(r.status, 400) << method << " " << path << " " << body << ": " << r.body;
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j["error"]["param"].is_string() ? j["error"]["param"].get<std::string>() : "";
  }
};

TEST_F(KeysUsageTest, KeysCarryNameScopeAndExpiryAndAreListedWithoutSecrets) {
  const std::string t = new_tenant("acme");
  json ci = new_key(t, {{"name", "ci"}, {"scope", "deploy"}, {"expires_in", 3600}});
  EXPECT_EQ(ci["name"], "ci");
  EXPECT_EQ(ci["scope"], "deploy");
  EXPECT_EQ(ci["expires_at"].get<int64_t>(), ci["created"].get<int64_t>() + 3600);
  EXPECT_TRUE(ci["last_used"].is_null());
  ASSERT_TRUE(ci["key"].is_string());
  json plain = call_json("POST", "/admin/v1/tenants/" + t + "/keys", kAdminKey, nullptr, 201);  // no body
  EXPECT_EQ(plain["scope"], "inference");
  EXPECT_TRUE(plain["name"].is_null());
  EXPECT_TRUE(plain["expires_at"].is_null());

  json list = list_keys(t);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 2u);
  const std::string dump = list.dump();
  EXPECT_EQ(dump.find(ci["key"].get<std::string>()), std::string::npos) << "a key is listed";
  EXPECT_EQ(dump.find(plain["key"].get<std::string>()), std::string::npos) << "a key is listed";
  for (const json& k : list["data"]) {
    EXPECT_EQ(k.size(), 6u) << k.dump();  // key_id, name, scope, created, expires_at, last_used
    EXPECT_FALSE(k.contains("key"));
  }

  // Bad bodies: 400 naming the field, and no key made.
  EXPECT_EQ(bad_param("POST", "/admin/v1/tenants/" + t + "/keys", R"({"scope":"admin"})"), "scope");
  EXPECT_EQ(bad_param("POST", "/admin/v1/tenants/" + t + "/keys", R"({"expires_in":0})"), "expires_in");
  EXPECT_EQ(bad_param("POST", "/admin/v1/tenants/" + t + "/keys", R"({"expires_in":"1h"})"), "expires_in");
  EXPECT_EQ(bad_param("POST", "/admin/v1/tenants/" + t + "/keys", R"({"name":""})"), "name");
  EXPECT_EQ(bad_param("POST", "/admin/v1/tenants/" + t + "/keys", R"({"name":7})"), "name");
  EXPECT_EQ(bad_param("POST", "/admin/v1/tenants/" + t + "/keys", R"({"nmae":"x"})"), "nmae");
  bad_param("POST", "/admin/v1/tenants/" + t + "/keys", "[1,2]");
  EXPECT_EQ(list_keys(t)["data"].size(), 2u);
  EXPECT_EQ(call("GET", "/admin/v1/tenants/t_0000000000000000/keys", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/admin/v1/tenants/" + t + "/keys", plain["key"]).status, 403);
}

TEST_F(KeysUsageTest, DeployKeysCannotInferNorManageTenants) {
  const std::string t = new_tenant("acme");
  const std::string deploy = new_key(t, {{"scope", "deploy"}})["key"];
  const std::string infer = new_key(t, json::object())["key"];
  HttpResponse r = call("GET", "/v1/models", deploy);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("deploy key"), std::string::npos) << r.body;
  EXPECT_EQ(call("POST", "/v1/completions", deploy, base_body(server_->model_id()).dump()).status, 403);
  EXPECT_EQ(call("GET", "/admin/v1/tenants", deploy).status, 403);
  EXPECT_EQ(call("POST", "/admin/v1/tenants/" + t + "/keys", deploy).status, 403);
  EXPECT_EQ(call("GET", "/admin/v1/usage", deploy).status, 403);
  EXPECT_EQ(call("GET", "/v1/models", infer).status, 200);
}

TEST_F(KeysUsageTest, ExpiredKeysAre401) {
  const std::string t = new_tenant("acme");
  // created is in whole seconds, so a 2 s key is valid for at least 1 s.
  const std::string key = new_key(t, {{"expires_in", 2}})["key"];
  const auto made = std::chrono::steady_clock::now();
  HttpResponse r = call("GET", "/v1/models", key);
  // Used within 0.5 s it is certainly valid; on a slower machine this check is moot.
  if (std::chrono::steady_clock::now() - made < std::chrono::milliseconds(500)) {
    EXPECT_EQ(r.status, 200) << r.body;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));
  r = call("GET", "/v1/models", key);
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(r.body.find("expired"), std::string::npos) << r.body;
}

TEST_F(KeysUsageTest, NamesScopesAndLastUseSurviveRestart) {
  const std::string t = new_tenant("acme");
  json k = new_key(t, {{"name", "prod"}, {"expires_in", 86400}});
  json d = new_key(t, {{"name", "ci"}, {"scope", "deploy"}});
  ASSERT_EQ(call("GET", "/v1/models", k["key"]).status, 200);
  json listed = list_keys(t)["data"];
  restart();
  json after = list_keys(t)["data"];
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after, listed);
  for (const json& e : after) {
    if (e["key_id"] == k["key_id"]) {
      EXPECT_EQ(e["name"], "prod");
      EXPECT_EQ(e["scope"], "inference");
      EXPECT_EQ(e["expires_at"], k["expires_at"]);
      ASSERT_TRUE(e["last_used"].is_number()) << e.dump();
      EXPECT_LE(e["last_used"].get<int64_t>(), std::time(nullptr));
      EXPECT_GE(e["last_used"].get<int64_t>(), k["created"].get<int64_t>() - 60);
    } else {
      EXPECT_EQ(e["name"], "ci");
      EXPECT_EQ(e["scope"], "deploy");
      EXPECT_TRUE(e["last_used"].is_null());
    }
  }
  EXPECT_EQ(call("GET", "/v1/models", k["key"]).status, 200);
  EXPECT_EQ(call("GET", "/v1/models", d["key"]).status, 403);
}

TEST_F(KeysUsageTest, UsageIsGroupedByDayAndFiltered) {
  const std::string a = new_tenant("a"), b = new_tenant("b");
  const std::string ka = new_key(a, json::object())["key"], kb = new_key(b, json::object())["key"];
  const std::string model = server_->model_id();
  json one = call_json("POST", "/v1/completions", ka, base_body(model, 3), 200);
  call_json("POST", "/v1/completions", ka, base_body(model, 2), 200);
  call_json("POST", "/v1/completions", kb, base_body(model, 4), 200);
  const int64_t prompt = one["usage"]["prompt_tokens"];

  json all = call_json("GET", "/admin/v1/usage", kAdminKey, nullptr, 200);
  EXPECT_EQ(all["object"], "list");
  ASSERT_EQ(all["data"].size(), 2u) << all.dump();
  json ra = all["data"][0]["tenant"] == a ? all["data"][0] : all["data"][1];
  EXPECT_EQ(ra["tenant"], a);
  EXPECT_EQ(ra["adapter"], model);
  EXPECT_EQ(ra["requests"], 2);
  EXPECT_EQ(ra["prompt_tokens"], 2 * prompt);
  EXPECT_EQ(ra["completion_tokens"], 5);
  EXPECT_FALSE(ra.contains("day"));

  json by_day = call_json("GET", "/admin/v1/usage?tenant=" + a + "&group_by=day", kAdminKey, nullptr, 200);
  ASSERT_EQ(by_day["data"].size(), 1u) << by_day.dump();
  EXPECT_EQ(by_day["data"][0]["day"], today());
  EXPECT_EQ(by_day["data"][0]["requests"], 2);

  const std::string now = std::to_string(std::time(nullptr));
  json in_range = call_json("GET", "/admin/v1/usage?from=" + today() + "&to=" + now + "&adapter=" + model,
                            kAdminKey, nullptr, 200);
  EXPECT_EQ(in_range["data"].size(), 2u) << in_range.dump();
  json before = call_json("GET", "/admin/v1/usage?to=2020-01-01", kAdminKey, nullptr, 200);
  EXPECT_TRUE(before["data"].empty()) << before.dump();
  json other = call_json("GET", "/admin/v1/usage?adapter=sql-writer", kAdminKey, nullptr, 200);
  EXPECT_TRUE(other["data"].empty()) << other.dump();

  // Usage persists: the restart flushes it and the next start reads it back by day.
  restart();
  json again = call_json("GET", "/admin/v1/usage?group_by=day&tenant=" + b, kAdminKey, nullptr, 200);
  ASSERT_EQ(again["data"].size(), 1u) << again.dump();
  EXPECT_EQ(again["data"][0]["completion_tokens"], 4);
  EXPECT_EQ(again["data"][0]["day"], today());

  // Every parameter is checked.
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?from=yesterday"), "from");
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?to=2026-02-30"), "to");
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?from=2026-02-01&to=2026-01-01"), "to");
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?group_by=week"), "group_by");
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?tenant="), "tenant");
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?adapter="), "adapter");
  EXPECT_EQ(bad_param("GET", "/admin/v1/usage?limit=5"), "limit");
  EXPECT_EQ(call("GET", "/admin/v1/usage", ka).status, 403);
  EXPECT_EQ(call("GET", "/admin/v1/usage", "").status, 401);
}

TEST_F(KeysUsageTest, DeletingATenantWithAdaptersNeedsCascade) {
  const std::string t = new_tenant("owner");
  const std::string key = new_key(t, json::object())["key"];
  ASSERT_EQ(upload("support-bot", t, "support-bot").status, 201);
  const std::string other = new_tenant("other");
  ASSERT_EQ(upload("sql-writer", other, "sql-writer").status, 201);

  HttpResponse r = call("DELETE", "/admin/v1/tenants/" + t, kAdminKey);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("owns 1 adapter"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("cascade"), std::string::npos) << r.body;
  EXPECT_EQ(bad_param("DELETE", "/admin/v1/tenants/" + t + "?cascade=yes"), "cascade");
  EXPECT_EQ(bad_param("DELETE", "/admin/v1/tenants/" + t + "?force=true"), "force");
  // Nothing changed.
  EXPECT_EQ(call("GET", "/admin/v1/tenants/" + t, kAdminKey).status, 200);
  EXPECT_EQ(call("GET", "/admin/v1/adapters/support-bot", kAdminKey).status, 200);
  EXPECT_EQ(call("GET", "/v1/models", key).status, 200);

  json done = call_json("DELETE", "/admin/v1/tenants/" + t + "?cascade=true", kAdminKey, nullptr, 200);
  EXPECT_EQ(done["deleted"], true);
  EXPECT_EQ(done["deleted_adapters"], json::array({"support-bot"}));
  EXPECT_EQ(call("GET", "/admin/v1/tenants/" + t, kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/admin/v1/adapters/support-bot", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/v1/models", key).status, 401);
  EXPECT_EQ(call("GET", "/admin/v1/adapters/sql-writer", kAdminKey).status, 200) << "another tenant's adapter went";
  // A tenant without adapters needs no cascade; an unknown one is 404 either way.
  EXPECT_EQ(call("DELETE", "/admin/v1/tenants/" + new_tenant("empty"), kAdminKey).status, 200);
  EXPECT_EQ(call("DELETE", "/admin/v1/tenants/" + t + "?cascade=true", kAdminKey).status, 404);
  restart();
  EXPECT_EQ(call("GET", "/admin/v1/adapters/support-bot", kAdminKey).status, 404);
  EXPECT_EQ(call("GET", "/admin/v1/adapters/sql-writer", kAdminKey).status, 200);
}

TEST_F(KeysUsageTest, RateLimitHeadersOnEveryTenantResponse) {
  const std::string model = server_->model_id();
  const std::string limited = new_tenant("limited", {{"requests_per_minute", 3}, {"tokens_per_minute", 60}});
  const std::string key = new_key(limited, json::object())["key"];
  // Each request uses 9 tokens (6 of prompt, 3 generated); both buckets refill at 1 per second
  // (tokens) or 1 per 20 s (requests), far slower than these requests follow each other.
  int64_t last_remaining = 4, last_tokens = 61;
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = call("POST", "/v1/completions", key, base_body(model).dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-ratelimit-limit-requests"), "3");
    EXPECT_EQ(r.header("x-ratelimit-limit-tokens"), "60");
    ASSERT_FALSE(r.header("x-ratelimit-remaining-requests").empty());
    const int64_t remaining = std::stoll(r.header("x-ratelimit-remaining-requests"));
    EXPECT_LT(remaining, last_remaining) << "request " << i;
    last_remaining = remaining;
    ASSERT_FALSE(r.header("x-ratelimit-remaining-tokens").empty());
    const int64_t tokens = std::stoll(r.header("x-ratelimit-remaining-tokens"));
    EXPECT_LT(tokens, last_tokens) << "request " << i;
    last_tokens = tokens;
    EXPECT_FALSE(r.header("x-ratelimit-reset-requests").empty());
    EXPECT_NE(r.header("x-ratelimit-reset-requests"), "0s");
    EXPECT_FALSE(r.header("x-ratelimit-reset-tokens").empty());
  }
  HttpResponse refused = call("POST", "/v1/completions", key, base_body(model).dump());
  ASSERT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.header("x-ratelimit-remaining-requests"), "0");
  EXPECT_FALSE(refused.header("retry-after").empty());
  // Streams carry them in their head, and errors before admission too.
  json stream = base_body(model);
  stream["stream"] = true;
  EXPECT_EQ(call("POST", "/v1/completions", key, stream.dump()).header("x-ratelimit-limit-requests"), "3");
  HttpResponse bad = call("POST", "/v1/completions", key, R"({"model":"x","max_tokens":-1})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.header("x-ratelimit-limit-requests"), "3");
  EXPECT_EQ(call("GET", "/v1/models", key).header("x-ratelimit-limit-requests"), "3");

  // Limits that are not set send no header.
  const std::string free_key = new_key(new_tenant("free"), json::object())["key"];
  HttpResponse r = call("POST", "/v1/completions", free_key, base_body(model).dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.header("x-ratelimit-limit-requests").empty());
  EXPECT_TRUE(r.header("x-ratelimit-limit-tokens").empty());
}

}  // namespace
}  // namespace quilt::testing
