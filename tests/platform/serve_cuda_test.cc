// quilt serve on the cuda backend, end to end over HTTP: the whole platform (storage, tenants,
// adapter uploads, the gateway) in front of an engine on --device cuda (the simulator's in CI).
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

json reference_case(const std::string& adapter, const std::string& prompt) {
  std::ifstream in(source_path("tests/data/expected.json"));
  const json all = json::parse(in);
  for (const json& c : all["cases"]) {
    if (c["prompt"] == prompt && (adapter.empty() ? c["adapter"].is_null() : c["adapter"] == adapter)) {
      return c;
    }
  }
  ADD_FAILURE() << "no case " << adapter << " / " << prompt;
  return {};
}

json body(const std::string& model, const std::string& prompt, int max_tokens) {
  return {{"model", model}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
          {"ignore_eos", true}, {"return_token_ids", true}};
}

class ServeCudaTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override { c.device = "cuda"; }
};

TEST_F(ServeCudaTest, CompletionsWithAndWithoutAdaptersMatchTheReference) {
  auto [tenant, key] = make_tenant("acme");
  ASSERT_EQ(upload("sql-writer", tenant, "sql-writer").status, 201);
  ASSERT_EQ(upload("legal-rs", tenant, "legal-rs").status, 201);

  // Cases whose every reference margin is ≥ 0.05: fp16 must give exactly the reference's ids.
  for (const auto& [adapter, prompt] : std::vector<std::pair<std::string, std::string>>{
           {"sql-writer", "The quick brown fox"},
           {"legal-rs", "The quick brown fox"},
           {"", "Low-rank adaptation adds"}}) {
    const json ref = reference_case(adapter, prompt);
    const std::string model = adapter.empty() ? server_->model_id() : adapter;
    json out = call_json("POST", "/v1/completions", key, body(model, prompt, 16), 200);
    EXPECT_EQ(out["choices"][0]["token_ids"], ref["greedy_ids"]) << model;
    EXPECT_EQ(out["choices"][0]["finish_reason"], "length") << model;
  }

  // Seeded sampling with logprobs, on the device: the same seed gives the same tokens.
  json sampled = body("sql-writer", "The quick brown fox", 12);
  sampled["temperature"] = 0.8;
  sampled["top_k"] = 40;
  sampled["top_p"] = 0.9;
  sampled["seed"] = 1234;
  sampled["logprobs"] = 3;
  json a = call_json("POST", "/v1/completions", key, sampled, 200);
  json b = call_json("POST", "/v1/completions", key, sampled, 200);
  EXPECT_EQ(a["choices"][0]["token_ids"], b["choices"][0]["token_ids"]);
  EXPECT_EQ(a["choices"][0]["token_ids"].size(), 12u);
  EXPECT_FALSE(a["choices"][0]["logprobs"].is_null());
}

}  // namespace
}  // namespace quilt::testing
