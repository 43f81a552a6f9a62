// The public contract of API.md over real HTTP: every route's success and its error statuses.
#include <thread>

#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

// The reference continuation of a fixture case, for checking completions over HTTP.
json expected_case(const std::string& adapter, const std::string& prompt) {
  std::ifstream in(source_path("tests/data/expected.json"));
  json all = json::parse(in);
  for (const json& c : all["cases"]) {
    if (c["prompt"] == prompt && (adapter.empty() ? c["adapter"].is_null() : c["adapter"] == adapter)) return c;
  }
  ADD_FAILURE() << "no case " << adapter << " / " << prompt;
  return {};
}

json greedy_body(const std::string& model, const std::string& prompt, int max_tokens) {
  return {{"model", model}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
          {"ignore_eos", true}, {"return_token_ids", true}};
}

TEST_F(ServerTest, HealthAndReadinessNeedNoKey) {
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(call("GET", "/readyz", "").status, 200);
}

TEST_F(ServerTest, TenantLifecycle) {
  json t = call_json("POST", "/admin/v1/tenants", kAdminKey,
                     {{"name", "acme"}, {"weight", 2.5}, {"limits", {{"requests_per_minute", 100}}}}, 201);
  const std::string id = t["id"];
  EXPECT_EQ(t["name"], "acme");
  EXPECT_EQ(t["weight"], 2.5);
  EXPECT_EQ(t["limits"]["requests_per_minute"], 100);

  json list = call_json("GET", "/admin/v1/tenants", kAdminKey, nullptr, 200);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], id);

  json patched = call_json("PATCH", "/admin/v1/tenants/" + id, kAdminKey, {{"weight", 4}}, 200);
  EXPECT_EQ(patched["weight"], 4.0);
  EXPECT_EQ(patched["limits"]["requests_per_minute"], 100);  // untouched
  EXPECT_EQ(call_json("GET", "/admin/v1/tenants/" + id, kAdminKey, nullptr, 200)["weight"], 4.0);

  call_json("DELETE", "/admin/v1/tenants/" + id, kAdminKey, nullptr, 200);
  json missing = call_json("GET", "/admin/v1/tenants/" + id, kAdminKey, nullptr, 404);
  EXPECT_TRUE(missing["error"]["message"].is_string());
}

TEST_F(ServerTest, BadTenantInputsChangeNothing) {
  call_json("POST", "/admin/v1/tenants", kAdminKey, {{"weight", 1}}, 400);
  json e = call_json("POST", "/admin/v1/tenants", kAdminKey, {{"name", "x"}, {"weight", -1}}, 400);
  EXPECT_EQ(e["error"]["param"], "weight");
  e = call_json("POST", "/admin/v1/tenants", kAdminKey, {{"name", "x"}, {"limits", {{"tokens_per_minute", "many"}}}}, 400);
  EXPECT_EQ(e["error"]["param"], "limits.tokens_per_minute");
  EXPECT_EQ(call("POST", "/admin/v1/tenants", kAdminKey, "{not json").status, 400);
  EXPECT_EQ(call("POST", "/admin/v1/tenants", kAdminKey, "name=x", "application/x-www-form-urlencoded").status, 415);
  EXPECT_EQ(call_json("GET", "/admin/v1/tenants", kAdminKey, nullptr, 200)["data"].size(), 0u);
}

TEST_F(ServerTest, AuthenticationAndAuthorization) {
  auto [tenant, key] = make_tenant("acme");
  EXPECT_EQ(call("GET", "/v1/models", "").status, 401);
  EXPECT_EQ(call("GET", "/v1/models", "qk_wrong").status, 401);
  EXPECT_EQ(call("GET", "/v1/models", key).status, 200);
  EXPECT_EQ(call("GET", "/admin/v1/tenants", key).status, 403);
  EXPECT_EQ(call("GET", "/admin/v1/tenants", "").status, 401);
  json err = json::parse(call("GET", "/admin/v1/tenants", key).body);
  for (const char* f : {"message", "type", "param", "code"}) EXPECT_TRUE(err["error"].contains(f)) << f;
  EXPECT_EQ(call("GET", "/v1/nothing-here", key).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/models", key).status, 405);
}

TEST_F(ServerTest, RevokedKeyFailsFromTheNextRequestOn) {
  auto [tenant, key] = make_tenant("acme");
  json k2 = call_json("POST", "/admin/v1/tenants/" + tenant + "/keys", kAdminKey, nullptr, 201);
  ASSERT_EQ(call("GET", "/v1/models", k2["key"]).status, 200);
  call_json("DELETE", "/admin/v1/tenants/" + tenant + "/keys/" + k2["key_id"].get<std::string>(), kAdminKey, nullptr, 200);
  EXPECT_EQ(call("GET", "/v1/models", k2["key"]).status, 401);
  EXPECT_EQ(call("GET", "/v1/models", key).status, 200);  // the other key still works
  call_json("DELETE", "/admin/v1/tenants/" + tenant + "/keys/k_doesnotexist", kAdminKey, nullptr, 404);
}

TEST_F(ServerTest, UploadServeAndCompleteExactlyAsTransformers) {
  auto [tenant, key] = make_tenant("acme");
  HttpResponse up = upload("support-bot", tenant, "support-bot");
  ASSERT_EQ(up.status, 201) << up.body;
  json v = json::parse(up.body);
  EXPECT_EQ(v["version"], 1);
  EXPECT_EQ(v["rank"], 8);
  EXPECT_EQ(v["target_modules"], json({"q_proj", "v_proj"}));
  EXPECT_GT(v["bytes"].get<int64_t>(), 0);

  json models = call_json("GET", "/v1/models", key, nullptr, 200);
  ASSERT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(models["data"][1]["id"], "support-bot");

  const json ref = expected_case("support-bot", "The quick brown fox");
  json out = call_json("POST", "/v1/completions", key, greedy_body("support-bot", "The quick brown fox", 16), 200);
  EXPECT_EQ(out["object"], "text_completion");
  EXPECT_EQ(out["choices"][0]["token_ids"], ref["greedy_ids"]);
  EXPECT_EQ(out["prompt_token_ids"], ref["prompt_ids"]);
  EXPECT_EQ(out["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(out["usage"]["completion_tokens"], 16);
  EXPECT_EQ(out["usage"]["prompt_tokens"], ref["prompt_ids"].size());

  // The per-adapter route gives the same answer without `model`.
  json body = greedy_body("", "The quick brown fox", 16);
  body.erase("model");
  json per = call_json("POST", "/v1/adapters/support-bot/completions", key, body, 200);
  EXPECT_EQ(per["choices"][0]["text"], out["choices"][0]["text"]);

  // The base model by its id.
  const json base_ref = expected_case("", "The quick brown fox");
  json base = call_json("POST", "/v1/completions", key, greedy_body(server_->model_id(), "The quick brown fox", 16), 200);
  EXPECT_EQ(base["choices"][0]["token_ids"], base_ref["greedy_ids"]);
}

TEST_F(ServerTest, ChatCompletionUsesTheTemplate) {
  auto [tenant, key] = make_tenant("acme");
  json body = {{"model", server_->model_id()},
               {"messages", {{{"role", "system"}, {"content", "You write SQL."}}, {{"role", "user"}, {"content", "Count the orders."}}}},
               {"max_tokens", 5}, {"temperature", 0}, {"ignore_eos", true}, {"return_token_ids", true}};
  json out = call_json("POST", "/v1/chat/completions", key, body, 200);
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["choices"][0]["message"]["role"], "assistant");
  std::ifstream in(source_path("tests/data/expected.json"));
  EXPECT_EQ(out["prompt_token_ids"], json::parse(in)["chat"]["ids"]);
  EXPECT_EQ(out["usage"]["completion_tokens"], 5);
}

TEST_F(ServerTest, StreamedTextEqualsNonStreamedText) {
  auto [tenant, key] = make_tenant("acme");
  ASSERT_EQ(upload("sql", tenant, "sql-writer").status, 201);
  json body = greedy_body("sql", "SELECT name FROM", 20);
  json plain = call_json("POST", "/v1/completions", key, body, 200);

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  HttpResponse r = call("POST", "/v1/completions", key, body.dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  std::string text;
  bool done = false, saw_usage = false;
  std::string finish;
  size_t pos = 0;
  while ((pos = r.body.find("data: ", pos)) != std::string::npos) {
    const size_t end = r.body.find("\n\n", pos);
    const std::string payload = r.body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (payload == "[DONE]") {
      done = true;
      continue;
    }
    json chunk = json::parse(payload);
    if (chunk.contains("usage") && chunk["choices"].empty()) {
      saw_usage = true;
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 20);
      continue;
    }
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_TRUE(saw_usage);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(text, plain["choices"][0]["text"]);
}

TEST_F(ServerTest, BadCompletionRequestsAre400WithTheParam) {
  auto [tenant, key] = make_tenant("acme");
  const std::string m = server_->model_id();
  EXPECT_EQ(call("POST", "/v1/completions", key, "{").status, 400);
  json e = call_json("POST", "/v1/completions", key, {{"model", m}, {"prompt", "x"}, {"temperature", "hot"}}, 400);
  EXPECT_EQ(e["error"]["param"], "temperature");
  e = call_json("POST", "/v1/completions", key, {{"model", m}, {"prompt", "x"}, {"max_tokens", 0}}, 400);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  e = call_json("POST", "/v1/completions", key, {{"model", m}}, 400);
  EXPECT_EQ(e["error"]["param"], "prompt");
  e = call_json("POST", "/v1/completions", key, {{"model", m}, {"prompt", "x"}, {"max_tokens", 100000}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("context"), std::string::npos);
  e = call_json("POST", "/v1/completions", key, {{"model", m}, {"prompt", {1, 2, 999999}}}, 400);
  EXPECT_EQ(e["error"]["param"], "prompt");
  e = call_json("POST", "/v1/chat/completions", key, {{"model", m}, {"messages", "hi"}}, 400);
  EXPECT_EQ(e["error"]["param"], "messages");
  EXPECT_EQ(call("POST", "/v1/completions", key, "x", "text/plain").status, 415);
}

TEST_F(ServerTest, OtherTenantsAdaptersAre404WithoutLeakingTheName) {
  auto [a, key_a] = make_tenant("a");
  auto [b, key_b] = make_tenant("b");
  ASSERT_EQ(upload("secret-a", a, "support-bot").status, 201);
  ASSERT_EQ(upload("common", a, "wide-64", /*shared=*/true).status, 201);

  json foreign = call_json("POST", "/v1/completions", key_b, greedy_body("secret-a", "hi", 2), 404);
  json missing = call_json("POST", "/v1/completions", key_b, greedy_body("no-such", "hi", 2), 404);
  // Same answer for both, apart from the name the caller itself sent.
  std::string fm = foreign["error"]["message"], mm = missing["error"]["message"];
  EXPECT_EQ(fm.replace(fm.find("secret-a"), 8, "X"), mm.replace(mm.find("no-such"), 7, "X"));
  EXPECT_EQ(call("POST", "/v1/adapters/secret-a/completions", key_b, json{{"prompt", "hi"}}.dump()).status, 404);

  json models_b = call_json("GET", "/v1/models", key_b, nullptr, 200);
  ASSERT_EQ(models_b["data"].size(), 2u);  // the base model and the shared adapter only
  EXPECT_EQ(models_b["data"][1]["id"], "common");
  EXPECT_EQ(models_b["data"][1]["owned_by"], "shared");
  EXPECT_EQ(models_b.dump().find(a), std::string::npos);  // a's tenant id never shows
  call_json("POST", "/v1/completions", key_b, greedy_body("common", "hi", 2), 200);
}

TEST_F(ServerTest, HotDeployPinsVersionsAndRollsBack) {
  auto [tenant, key] = make_tenant("acme");
  ASSERT_EQ(upload("bot", tenant, "support-bot").status, 201);
  json v1 = call_json("POST", "/v1/completions", key, greedy_body("bot", "The quick brown fox", 8), 200);
  HttpResponse up2 = upload("bot", tenant, "sql-writer");
  ASSERT_EQ(up2.status, 201) << up2.body;
  EXPECT_EQ(json::parse(up2.body)["version"], 2);

  json live = call_json("POST", "/v1/completions", key, greedy_body("bot", "The quick brown fox", 8), 200);
  json pinned = call_json("POST", "/v1/completions", key, greedy_body("bot@1", "The quick brown fox", 8), 200);
  const json sql_ref = expected_case("sql-writer", "The quick brown fox");
  EXPECT_EQ(live["choices"][0]["token_ids"], json(std::vector<int>(sql_ref["greedy_ids"].begin(), sql_ref["greedy_ids"].begin() + 8)));
  EXPECT_EQ(pinned["choices"][0]["token_ids"], v1["choices"][0]["token_ids"]);
  call_json("POST", "/v1/completions", key, greedy_body("bot@3", "x", 2), 404);

  json info = call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200);
  EXPECT_EQ(info["live_version"], 2);
  EXPECT_EQ(info["versions"].size(), 2u);
  EXPECT_EQ(info["resident"]["storage"], true);

  call_json("POST", "/admin/v1/adapters/bot/rollback", kAdminKey, {{"version", 1}}, 200);
  json back = call_json("POST", "/v1/completions", key, greedy_body("bot", "The quick brown fox", 8), 200);
  EXPECT_EQ(back["choices"][0]["token_ids"], v1["choices"][0]["token_ids"]);
  call_json("POST", "/admin/v1/adapters/bot/rollback", kAdminKey, {{"version", 7}}, 404);

  call_json("POST", "/admin/v1/adapters/bot/evict", kAdminKey, nullptr, 200);
  json after = call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200);
  EXPECT_EQ(after["resident"]["host"], false);
  json again = call_json("POST", "/v1/completions", key, greedy_body("bot", "The quick brown fox", 8), 200);
  EXPECT_EQ(again["choices"][0]["token_ids"], v1["choices"][0]["token_ids"]);  // reloaded on demand

  call_json("DELETE", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200);
  call_json("POST", "/v1/completions", key, greedy_body("bot", "x", 2), 404);
  call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 404);
}

TEST_F(ServerTest, AdapterUploadsThatDoNotFitAre422AndChangeNothing) {
  auto [tenant, key] = make_tenant("acme");
  json cfg = json::parse(fixture_file("support-bot", "adapter_config.json"));
  cfg["target_modules"] = {"q_proj", "v_proj", "embed_tokens"};
  HttpResponse r = upload("bad", tenant, "support-bot", false, cfg.dump());
  EXPECT_EQ(r.status, 422) << r.body;
  cfg = json::parse(fixture_file("support-bot", "adapter_config.json"));
  cfg["r"] = 4;  // the weights have rank 8
  EXPECT_EQ(upload("bad", tenant, "support-bot", false, cfg.dump()).status, 422);
  EXPECT_EQ(upload("bad", tenant, "support-bot", false, "{nope").status, 400);
  EXPECT_EQ(upload("bad name!", tenant, "support-bot").status, 400);
  EXPECT_EQ(upload("ok", "t_nobody", "support-bot").status, 400);
  auto [type, body] = multipart({{"tenant", tenant}}, {});
  EXPECT_EQ(call("PUT", "/admin/v1/adapters/x", kAdminKey, body, type).status, 400);
  EXPECT_EQ(call("PUT", "/admin/v1/adapters/x", kAdminKey, "{}", "application/json").status, 415);
  EXPECT_EQ(call_json("GET", "/admin/v1/adapters", kAdminKey, nullptr, 200)["data"].size(), 0u);
}

TEST_F(ServerTest, RestartKeepsTenantsKeysAdaptersAndLiveVersions) {
  auto [tenant, key] = make_tenant("acme");
  ASSERT_EQ(upload("bot", tenant, "support-bot").status, 201);
  ASSERT_EQ(upload("bot", tenant, "legal-rs").status, 201);
  call_json("POST", "/admin/v1/adapters/bot/rollback", kAdminKey, {{"version", 1}}, 200);
  json before = call_json("POST", "/v1/completions", key, greedy_body("bot", "The quick brown fox", 8), 200);

  restart();
  EXPECT_EQ(call_json("GET", "/admin/v1/tenants/" + tenant, kAdminKey, nullptr, 200)["name"], "acme");
  json info = call_json("GET", "/admin/v1/adapters/bot", kAdminKey, nullptr, 200);
  EXPECT_EQ(info["live_version"], 1);
  EXPECT_EQ(info["versions"].size(), 2u);
  json after = call_json("POST", "/v1/completions", key, greedy_body("bot", "The quick brown fox", 8), 200);
  EXPECT_EQ(after["choices"][0]["token_ids"], before["choices"][0]["token_ids"]);
}

TEST_F(ServerTest, ClientDisconnectMidStreamFreesTheRequest) {
  auto [tenant, key] = make_tenant("acme");
  json body = greedy_body(server_->model_id(), "The quick brown fox", 400);
  body["stream"] = true;
  {
    HttpConnection c(server_->port());
    c.send_request("POST", "/v1/completions", body.dump(),
                   {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}});
    HttpResponse head = c.read_head();
    ASSERT_EQ(head.status, 200);
    ASSERT_FALSE(c.read_chunk().empty());  // tokens are flowing
  }  // the client goes away mid-stream
  engine::EngineStats s;
  for (int i = 0; i < 200; ++i) {
    s = server_->platform().engine->stats();
    if (s.running == 0 && s.waiting == 0 && s.kv_blocks_used == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_LT(s.tokens_generated, 400u);
}

TEST_F(ServerTest, MetricsCountRequestsAndTokens) {
  auto [tenant, key] = make_tenant("acme");
  call_json("POST", "/v1/completions", key, greedy_body(server_->model_id(), "hi", 3), 200);
  HttpResponse m = call("GET", "/metrics", kAdminKey);
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("quilt_http_requests_total{route=\"/v1/completions\",status=\"200\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("quilt_completion_tokens_total{adapter=\"\",tenant=\"" + tenant + "\"} 3"), std::string::npos);
  EXPECT_NE(m.body.find("quilt_time_to_first_token_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("quilt_kv_blocks_total"), std::string::npos);
  EXPECT_NE(m.body.find("quilt_adapters_resident{tier=\"device\"}"), std::string::npos);
}

class LimitedServerTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override { c.http.max_body_bytes = 4096; }
};

TEST_F(LimitedServerTest, OverLimitsAre413And429) {
  auto [tenant, key] = make_tenant("acme", {{"requests_per_minute", 2}});
  json body = greedy_body(server_->model_id(), "hi", 1);
  EXPECT_EQ(call("POST", "/v1/completions", key, body.dump()).status, 200);
  EXPECT_EQ(call("POST", "/v1/completions", key, body.dump()).status, 200);
  HttpResponse limited = call("POST", "/v1/completions", key, body.dump());
  EXPECT_EQ(limited.status, 429);
  EXPECT_GE(std::stoi(limited.headers["retry-after"]), 1);
  body["prompt"] = std::string(8000, 'a');
  EXPECT_EQ(call("POST", "/v1/completions", key, body.dump()).status, 413);
}

// The body's own timeout passing is the client's choice, a 408 (a 503 until schemathesis flagged it
// as a server error); what it held is freed.
TEST_F(ServerTest, RequestPastItsOwnTimeoutIs408AndFreed) {
  auto [tenant, key] = make_tenant("acme");
  json body = greedy_body(server_->model_id(), "hi", 490);
  body["n"] = 16;  // thousands of tokens: far more than 10 ms of work
  body["timeout"] = 0.01;
  HttpResponse r = call("POST", "/v1/completions", key, body.dump());
  EXPECT_EQ(r.status, 408) << r.body;
  EXPECT_NE(r.body.find("timeout_error"), std::string::npos);
  engine::EngineStats s;
  for (int i = 0; i < 200; ++i) {
    s = server_->platform().engine->stats();
    if (s.running == 0 && s.kv_blocks_used == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(s.kv_blocks_used, 0);
  body["timeout"] = "soon";
  EXPECT_EQ(call("POST", "/v1/completions", key, body.dump()).status, 400);
}

class BoundedServerTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override { c.max_in_flight_per_tenant = 1; }
};

TEST_F(BoundedServerTest, TenantOverItsQueueBoundIs429) {
  auto [tenant, key] = make_tenant("acme");
  json slow = greedy_body(server_->model_id(), "hi", 490);
  slow["stream"] = true;
  HttpConnection c(server_->port());
  c.send_request("POST", "/v1/completions", slow.dump(),
                 {{"Authorization", "Bearer " + key}, {"Content-Type", "application/json"}});
  ASSERT_EQ(c.read_head().status, 200);
  HttpResponse r = call("POST", "/v1/completions", key, greedy_body(server_->model_id(), "hi", 1).dump());
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_FALSE(r.headers["retry-after"].empty());
}

TEST_F(ServerTest, DrainingAnswers503) {
  auto [tenant, key] = make_tenant("acme");
  server_->platform().draining = true;
  HttpResponse r = call("POST", "/v1/completions", key, greedy_body(server_->model_id(), "hi", 1).dump());
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.headers["retry-after"].empty());
  EXPECT_EQ(call("GET", "/readyz", "").status, 503);
}

}  // namespace
}  // namespace quilt::testing
