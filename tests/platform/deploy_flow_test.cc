// The deploy flow over HTTP (issue 12 item 2): idempotent pushes with sha256, uploader and
// metadata; version numbers never reused across DELETE and restart; staged versions and
// activation; canary splits; the serving version in every completion; deploy-key scoping.
#include <gtest/gtest.h>

#include <map>

#include "adapters/registry_store.h"
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

class DeployFlowTest : public ServerTest {
 protected:
  // A push as a CI job makes it: `fields` beyond config and weights (tenant, stage, metadata...).
  HttpResponse push(const std::string& key, const std::string& name, const std::string& fixture,
                    std::vector<std::pair<std::string, std::string>> fields,
                    const std::string& config_suffix = "") {
    fields.push_back({"config", fixture_file(fixture, "adapter_config.json") + config_suffix});
    auto [type, body] = multipart(fields, {{"weights", fixture_file(fixture, "adapter_model.safetensors")}});
    return call("PUT", "/admin/v1/adapters/" + name, key, body, type);
  }
  json body_of(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }

  // A key of `scope` for `tenant`: {key_id, key}.
  std::pair<std::string, std::string> make_key(const std::string& tenant, const std::string& scope) {
    json k = call_json("POST", "/admin/v1/tenants/" + tenant + "/keys", kAdminKey, {{"scope", scope}}, 201);
    return {k["key_id"], k["key"]};
  }

  // One short completion; the response (headers included).
  HttpResponse complete(const std::string& key, const std::string& model, bool stream = false) {
    json body = {{"model", model}, {"prompt", "hello"}, {"max_tokens", 1}, {"temperature", 0}};
    if (stream) body["stream"] = true;
    return call("POST", "/v1/completions", key, body.dump());
  }
};

TEST_F(DeployFlowTest, PushesAreIdempotentAndRecordWhoAndWhat) {
  auto [tenant, key] = make_tenant("team");
  const std::string meta = R"({"training_run": "r-17", "base_model": "tiny-llama"})";
  HttpResponse first = push(kAdminKey, "bot", "support-bot", {{"tenant", tenant}, {"metadata", meta}});
  ASSERT_EQ(first.status, 201) << first.body;
  json v1 = body_of(first);
  EXPECT_EQ(v1["version"], 1);
  EXPECT_EQ(v1["sha256"], adapters::registry_store::sha256_hex(fixture_file("support-bot", "adapter_model.safetensors")));
  EXPECT_EQ(v1["uploaded_by"], "admin");
  EXPECT_EQ(v1["metadata"]["training_run"], "r-17");
  EXPECT_EQ(v1["live"], true);
  EXPECT_EQ(v1["staged"], false);
  EXPECT_EQ(v1["existing"], false);

  // The same content again: 200 with the stored version, nothing new.
  HttpResponse again = push(kAdminKey, "bot", "support-bot", {{"tenant", tenant}});
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(body_of(again)["version"], 1);
  EXPECT_EQ(body_of(again)["existing"], true);
  EXPECT_EQ(body_of(again)["metadata"]["training_run"], "r-17");  // the stored version's

  ASSERT_EQ(push(kAdminKey, "bot", "sql-writer", {{"tenant", tenant}}).status, 201);
  json shown = call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200);
  ASSERT_EQ(shown["versions"].size(), 2u);
  EXPECT_EQ(shown["versions"][0]["sha256"], v1["sha256"]);
  EXPECT_EQ(shown["versions"][0]["metadata"]["base_model"], "tiny-llama");
  EXPECT_EQ(shown["versions"][0]["uploaded_by"], "admin");
  EXPECT_EQ(shown["versions"][0]["bytes"], v1["bytes"]);
  EXPECT_GT(shown["versions"][1]["created"].get<int64_t>(), 0);
  EXPECT_EQ(shown["versions"][1]["metadata"], json::object());
  EXPECT_EQ(shown["live_version"], 2);
  EXPECT_EQ(shown["live"], (json{{"2", 1.0}}));

  // Bad metadata is a 400 naming the field and stores nothing.
  for (const std::string bad : {"[1]", "{nope", "\"x\""}) {
    HttpResponse r = push(kAdminKey, "bot", "legal-rs", {{"tenant", tenant}, {"metadata", bad}});
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(body_of(r)["error"]["param"], "metadata");
  }
  EXPECT_EQ(push(kAdminKey, "bot", "legal-rs", {{"tenant", tenant}, {"stage", "maybe"}}).status, 400);

  // Numbers are never reused: not after DELETE, not after a restart.
  ASSERT_EQ(call("DELETE", "/admin/v1/adapters/bot", kAdminKey).status, 200);
  restart();
  EXPECT_EQ(call("GET", "/admin/v1/adapters/bot", kAdminKey).status, 404);
  HttpResponse after = push(kAdminKey, "bot", "support-bot", {{"tenant", tenant}});
  ASSERT_EQ(after.status, 201) << after.body;
  EXPECT_EQ(body_of(after)["version"], 3);
  EXPECT_EQ(complete(key, "bot@1").status, 404);
  EXPECT_EQ(complete(key, "bot").header("quilt-adapter-version"), "3");
}

TEST_F(DeployFlowTest, StagedVersionsGoLiveOnActivateAndResponsesNameTheVersion) {
  auto [tenant, key] = make_tenant("team");
  ASSERT_EQ(push(kAdminKey, "bot", "support-bot", {{"tenant", tenant}}).status, 201);
  HttpResponse staged = push(kAdminKey, "bot", "sql-writer", {{"tenant", tenant}, {"stage", "true"}});
  ASSERT_EQ(staged.status, 201) << staged.body;
  EXPECT_EQ(body_of(staged)["staged"], true);
  EXPECT_EQ(body_of(staged)["version"], 2);
  json shown = call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200);
  EXPECT_EQ(shown["live_version"], 1);
  EXPECT_EQ(shown["versions"][1]["live_share"], 0.0);
  EXPECT_EQ(shown["versions"][1]["staged"], true);
  EXPECT_EQ(shown["versions"][0]["live_share"], 1.0);
  EXPECT_EQ(shown["versions"][0]["staged"], false);

  // Not live: "bot" still runs version 1; "bot@2" tries the staged one.
  HttpResponse live = complete(key, "bot");
  ASSERT_EQ(live.status, 200) << live.body;
  EXPECT_EQ(live.header("quilt-adapter-version"), "1");
  EXPECT_EQ(body_of(live)["model"], "bot");
  HttpResponse pinned = complete(key, "bot@2");
  ASSERT_EQ(pinned.status, 200) << pinned.body;
  EXPECT_EQ(pinned.header("quilt-adapter-version"), "2");
  EXPECT_EQ(body_of(pinned)["model"], "bot@2");
  HttpResponse streamed = complete(key, "bot@2", /*stream=*/true);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(streamed.header("quilt-adapter-version"), "2");
  EXPECT_NE(streamed.body.find("\"model\":\"bot@2\""), std::string::npos) << streamed.body;
  // The per-adapter route and chat say it too; the base model has no such header.
  HttpResponse chat = call("POST", "/v1/adapters/bot/chat/completions", key,
                           json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 1}}.dump());
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(chat.header("quilt-adapter-version"), "1");
  HttpResponse base = complete(key, server_->model_id());
  ASSERT_EQ(base.status, 200) << base.body;
  EXPECT_EQ(base.header("quilt-adapter-version"), "");

  json activated = call_json("POST", "/admin/v1/adapters/bot/activate", kAdminKey, {{"version", 2}}, 200);
  EXPECT_EQ(activated["live_version"], 2);
  EXPECT_EQ(activated["live"], (json{{"2", 1.0}}));
  EXPECT_EQ(complete(key, "bot").header("quilt-adapter-version"), "2");
  call_json("POST", "/admin/v1/adapters/bot/activate", kAdminKey, {{"version", 9}}, 404);
  call_json("POST", "/admin/v1/adapters/bot/activate", kAdminKey, {{"version", "2"}}, 400);
  call_json("POST", "/admin/v1/adapters/nope/activate", kAdminKey, {{"version", 1}}, 404);
  // Rollback works as before, and survives a restart.
  call_json("POST", "/admin/v1/adapters/bot/rollback", kAdminKey, {{"version", 1}}, 200);
  restart();
  EXPECT_EQ(complete(key, "bot").header("quilt-adapter-version"), "1");
}

TEST_F(DeployFlowTest, ACanarySplitSendsItsShareToEachVersion) {
  auto [tenant, key] = make_tenant("team");
  ASSERT_EQ(push(kAdminKey, "bot", "support-bot", {{"tenant", tenant}}).status, 201);
  ASSERT_EQ(push(kAdminKey, "bot", "sql-writer", {{"tenant", tenant}, {"stage", "true"}}).status, 201);
  json split = call_json("PUT", "/admin/v1/adapters/bot/live", kAdminKey, {{"split", {{"1", 0.9}, {"2", 0.1}}}}, 200);
  EXPECT_EQ(split["live"], (json{{"1", 0.9}, {"2", 0.1}}));
  EXPECT_EQ(split["live_version"], 1);

  std::map<std::string, int> served;
  for (int i = 0; i < 200; ++i) {
    HttpResponse r = complete(key, "bot");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(body_of(r)["model"], "bot");
    ++served[r.header("quilt-adapter-version")];
  }
  EXPECT_EQ(served.size(), 2u);
  EXPECT_NEAR(served["1"], 180, 5);
  EXPECT_NEAR(served["2"], 20, 5);

  // Bad splits: 400 (shares, shape) or 404 (a version that does not exist); nothing changes.
  for (const json& bad : {json{{"split", {{"1", 0.9}, {"2", 0.2}}}}, json{{"split", {{"1", 1.5}, {"2", -0.5}}}},
                          json{{"split", {{"x", 1.0}}}}, json{{"split", {{"1", "1"}}}}, json{{"split", json::object()}},
                          json{{"split", 1}}, json{{"version", 1}}}) {
    HttpResponse r = call("PUT", "/admin/v1/adapters/bot/live", kAdminKey, bad.dump());
    EXPECT_EQ(r.status, 400) << bad.dump() << ": " << r.body;
    EXPECT_EQ(body_of(r)["error"]["param"], "split") << bad.dump();
  }
  call_json("PUT", "/admin/v1/adapters/bot/live", kAdminKey, {{"split", {{"1", 0.5}, {"7", 0.5}}}}, 404);
  call_json("PUT", "/admin/v1/adapters/nope/live", kAdminKey, {{"split", {{"1", 1.0}}}}, 404);
  EXPECT_EQ(call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200)["live"],
            (json{{"1", 0.9}, {"2", 0.1}}));

  // The split survives a restart; a rollback replaces it by one version.
  restart();
  EXPECT_EQ(call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200)["live"],
            (json{{"1", 0.9}, {"2", 0.1}}));
  json rolled = call_json("POST", "/admin/v1/adapters/bot/rollback", kAdminKey, {{"version", 2}}, 200);
  EXPECT_EQ(rolled["live"], (json{{"2", 1.0}}));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(complete(key, "bot").header("quilt-adapter-version"), "2");
}

TEST_F(DeployFlowTest, DeployKeysManageTheirTenantsAdaptersAndNothingElse) {
  auto [team, inference_key] = make_tenant("team");
  auto [other, other_key] = make_tenant("other");
  auto [deploy_id, deploy_key] = make_key(team, "deploy");
  ASSERT_EQ(push(kAdminKey, "theirs", "legal-rs", {{"tenant", other}}).status, 201);

  // A push with the tenant implied, recorded as this key's.
  HttpResponse mine = push(deploy_key, "mine", "support-bot", {{"stage", "true"}});
  ASSERT_EQ(mine.status, 201) << mine.body;
  EXPECT_EQ(body_of(mine)["uploaded_by"], deploy_id);
  EXPECT_EQ(push(deploy_key, "mine", "sql-writer", {{"tenant", team}}).status, 201);
  EXPECT_EQ(push(deploy_key, "mine", "sql-writer", {{"tenant", team}}).status, 200);
  EXPECT_EQ(push(deploy_key, "mine", "legal-rs", {{"tenant", other}}).status, 403);
  EXPECT_EQ(push(deploy_key, "mine", "legal-rs", {{"shared", "true"}}).status, 403);
  // Another tenant's name answers like a missing adapter.
  HttpResponse foreign = push(deploy_key, "theirs", "support-bot", {});
  EXPECT_EQ(foreign.status, 404) << foreign.body;
  EXPECT_EQ(body_of(foreign)["error"]["message"], "adapter 'theirs' not found");

  json listed = call_json("GET", "/admin/v1/adapters", deploy_key, nullptr, 200);
  ASSERT_EQ(listed["data"].size(), 1u);
  EXPECT_EQ(listed["data"][0]["name"], "mine");
  EXPECT_EQ(call_json("GET", "/admin/v1/adapters", kAdminKey, nullptr, 200)["data"].size(), 2u);

  const std::string missing = body_of(call("GET", "/admin/v1/adapters/nope", deploy_key))["error"]["message"];
  HttpResponse hidden = call("GET", "/admin/v1/adapters/theirs", deploy_key);
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(body_of(hidden)["error"]["message"], "adapter 'theirs' not found");
  EXPECT_EQ(missing, "adapter 'nope' not found");
  const json version1 = {{"version", 1}};
  const json split = {{"split", {{"1", 1.0}}}};
  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, json>>{{"POST", "/activate", version1},
                                                               {"POST", "/rollback", version1},
                                                               {"PUT", "/live", split},
                                                               {"POST", "/evict", nullptr},
                                                               {"DELETE", "", nullptr}}) {
    const std::string b = body.is_null() ? "" : body.dump();
    EXPECT_EQ(call(method, "/admin/v1/adapters/theirs" + path, deploy_key, b).status, 404) << method << path;
    EXPECT_EQ(call(method, "/admin/v1/adapters/mine" + path, deploy_key, b).status, 200) << method << path;
  }
  EXPECT_EQ(call("GET", "/admin/v1/adapters/theirs", kAdminKey).status, 200);  // untouched
  EXPECT_EQ(call("GET", "/admin/v1/adapters/mine", kAdminKey).status, 404);    // deleted last

  // Nothing else: tenant admin routes are 403, inference is 403; an inference key cannot deploy.
  EXPECT_EQ(call("GET", "/admin/v1/tenants", deploy_key).status, 403);
  EXPECT_EQ(call("POST", "/admin/v1/tenants/" + team + "/keys", deploy_key, "{}").status, 403);
  EXPECT_EQ(complete(deploy_key, "theirs").status, 403);
  EXPECT_EQ(complete(deploy_key, server_->model_id()).status, 403);
  EXPECT_EQ(call("GET", "/admin/v1/adapters", inference_key).status, 403);
  EXPECT_EQ(push(inference_key, "mine", "support-bot", {}).status, 403);
  EXPECT_EQ(call("GET", "/admin/v1/adapters", "").status, 401);
  EXPECT_EQ(call("GET", "/admin/v1/adapters", "qk_wrong").status, 401);
  (void)other_key;
}

}  // namespace
}  // namespace quilt::testing
