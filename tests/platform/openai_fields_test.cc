// OpenAI request fields through the HTTP API: logit_bias and the penalties honoured, fields Quilt
// does not implement refused by name before any stream starts, GET /v1/models/{id}, and a chat
// stream that opens every choice with its role; echo with logprobs covers the prompt (streamed
// and not), its values those of Hugging Face (tests/data/prompt_logprobs.json).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

class OpenAiFieldsTest : public ServerTest {
 protected:
  json completion(const std::string& key, json extra, int expected_status) {
    json body = {{"model", server_->model_id()}, {"prompt", "The quick brown fox"},
                 {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true},
                 {"return_token_ids", true}};
    body.update(extra);
    return call_json("POST", "/v1/completions", key, body, expected_status);
  }
};

TEST_F(OpenAiFieldsTest, LogitBiasForcesAToken) {
  const auto [tenant, key] = make_tenant("t");
  const json plain = completion(key, json::object(), 200);
  const auto plain_ids = plain["choices"][0]["token_ids"].get<std::vector<int32_t>>();
  // A token the unbiased run never chose, pushed to the top at every step.
  int32_t forced = 100;
  while (std::find(plain_ids.begin(), plain_ids.end(), forced) != plain_ids.end()) ++forced;
  const json biased = completion(key, {{"logit_bias", {{std::to_string(forced), 100}}}}, 200);
  EXPECT_EQ(biased["choices"][0]["token_ids"].get<std::vector<int32_t>>(),
            std::vector<int32_t>(6, forced));
  // -100 on the unbiased run's first token takes it out of the race.
  const json banned = completion(key, {{"logit_bias", {{std::to_string(plain_ids[0]), -100}}}}, 200);
  EXPECT_NE(banned["choices"][0]["token_ids"][0].get<int32_t>(), plain_ids[0]);
}

// How often the most frequent token of a completion occurs.
size_t most_repeats(const json& completion) {
  std::map<int32_t, size_t> counts;
  size_t most = 0;
  for (const json& id : completion["choices"][0]["token_ids"]) most = std::max(most, ++counts[id.get<int32_t>()]);
  return most;
}

TEST_F(OpenAiFieldsTest, PenaltiesReduceRepeats) {
  const auto [tenant, key] = make_tenant("t");
  // Six candidates lifted far above the rest: greedy keeps taking the best of them; penalties
  // (2 once plus 2 per use) push a used token below the others within a few steps.
  json bias = json::object();
  for (int id = 100; id < 106; ++id) bias[std::to_string(id)] = 100;
  const size_t plain = most_repeats(completion(key, {{"logit_bias", bias}}, 200));
  ASSERT_GE(plain, 3u) << "the check needs a completion that repeats";
  const size_t penalized = most_repeats(
      completion(key, {{"logit_bias", bias}, {"presence_penalty", 2}, {"frequency_penalty", 2}}, 200));
  EXPECT_LT(penalized, plain);
  // A negative penalty favours repeats: never fewer than without.
  EXPECT_GE(most_repeats(completion(key, {{"logit_bias", bias}, {"frequency_penalty", -2}}, 200)), plain);
}

TEST_F(OpenAiFieldsTest, LogitBiasOutsideTheVocabularyIsA400) {
  const auto [tenant, key] = make_tenant("t");
  const json e = completion(key, {{"logit_bias", {{"1000000", 5}}}}, 400);
  EXPECT_EQ(e["error"]["param"], "logit_bias") << e.dump();
}

TEST_F(OpenAiFieldsTest, UnimplementedFieldsAre400sNamingTheFieldEvenWhenStreaming) {
  const auto [tenant, key] = make_tenant("t");
  const json chat = {{"model", server_->model_id()},
                     {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                     {"stream", true}};
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, json>>{{"tools", json::array({{{"type", "function"}}})},
                                                 {"response_format", {{"type", "json_object"}}},
                                                 {"tool_choice", "auto"}}) {
    json body = chat;
    body[field] = value;
    const HttpResponse r = call("POST", "/v1/chat/completions", key, body.dump());
    EXPECT_EQ(r.status, 400) << field << ": " << r.body;
    EXPECT_EQ(r.header("content-type").rfind("application/json", 0), 0u) << field;
    EXPECT_EQ(json::parse(r.body, nullptr, false)["error"]["param"], field) << r.body;
  }
  const json e = completion(key, {{"suffix", "tail"}}, 400);
  EXPECT_EQ(e["error"]["param"], "suffix");
}

TEST_F(OpenAiFieldsTest, ModelsById) {
  const auto [mine, key] = make_tenant("mine");
  const auto [other, other_key] = make_tenant("other");
  ASSERT_EQ(upload("private-bot", other, "support-bot").status, 201);
  ASSERT_EQ(upload("shared-bot", other, "support-bot", /*shared=*/true).status, 201);
  const json base = call_json("GET", "/v1/models/" + server_->model_id(), key, nullptr, 200);
  EXPECT_EQ(base["id"], server_->model_id());
  EXPECT_EQ(base["object"], "model");
  const json shared = call_json("GET", "/v1/models/shared-bot", key, nullptr, 200);
  EXPECT_EQ(shared["owned_by"], "shared");
  EXPECT_EQ(shared["parent"], server_->model_id());
  // Another tenant's private adapter is as absent as a name nobody used.
  const json hidden = call_json("GET", "/v1/models/private-bot", key, nullptr, 404);
  const json missing = call_json("GET", "/v1/models/no-such-model", key, nullptr, 404);
  EXPECT_EQ(hidden["error"]["type"], missing["error"]["type"]);
  call_json("GET", "/v1/models/private-bot", other_key, nullptr, 200);
  EXPECT_EQ(call("GET", "/v1/models/shared-bot", "").status, 401);
}

TEST_F(OpenAiFieldsTest, ChatStreamOpensEveryChoiceWithItsRole) {
  const auto [tenant, key] = make_tenant("t");
  const json body = {{"model", server_->model_id()},
                     {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                     {"stream", true}, {"n", 2}, {"max_tokens", 3}, {"temperature", 0}};
  const HttpResponse r = call("POST", "/v1/chat/completions", key, body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  std::map<int, int> roles, first_content_chunk;  // choice index -> chunk number
  std::istringstream lines(r.body);
  int chunk = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("data: {")) continue;
    const json c = json::parse(line.substr(6));
    for (const json& choice : c["choices"]) {
      const int index = choice["index"];
      if (choice["delta"].contains("role")) {
        EXPECT_EQ(choice["delta"]["role"], "assistant");
        roles.emplace(index, chunk);
      } else if (!first_content_chunk.count(index)) {
        first_content_chunk[index] = chunk;
      }
    }
    ++chunk;
  }
  ASSERT_EQ(roles.size(), 2u) << r.body;
  for (const auto& [index, at] : roles) {
    EXPECT_LT(at, first_content_chunk.count(index) ? first_content_chunk[index] : chunk) << index;
  }
}

// The data events of an SSE body, parsed.
std::vector<json> stream_chunks(const std::string& body) {
  std::vector<json> out;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("data: {")) out.push_back(json::parse(line.substr(6)));
  }
  return out;
}

TEST_F(OpenAiFieldsTest, EchoWithLogprobsCoversThePromptAsTransformersDoes) {
  const auto [tenant, key] = make_tenant("t");
  std::ifstream in(std::string(QUILT_SOURCE_DIR) + "/tests/data/prompt_logprobs.json");
  const json ref = json::parse(in)["cases"][0];  // a base-model case of the bundled tiny Llama
  ASSERT_TRUE(ref["adapter"].is_null());
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const size_t n = prompt.size();
  const json plain = completion(key, {{"prompt", prompt}, {"logprobs", 3}, {"max_tokens", 4}}, 200);
  const json echoed =
      completion(key, {{"prompt", prompt}, {"logprobs", 3}, {"max_tokens", 4}, {"echo", true}}, 200);
  const json& lp = echoed["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), n + 4) << lp.dump();
  ASSERT_EQ(lp["token_logprobs"].size(), n + 4);
  ASSERT_EQ(lp["top_logprobs"].size(), n + 4);
  // The first prompt token has nothing to be predicted from.
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  for (size_t i = 1; i < n; ++i) {
    const double got = lp["token_logprobs"][i].get<double>();
    EXPECT_NEAR(got, ref["logprobs"][i - 1].get<double>(), 1e-4) << "prompt position " << i;
    ASSERT_EQ(lp["top_logprobs"][i].size(), 3u) << i;
    double best = -1e30;
    for (const auto& [token, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(best, ref["top_logprobs"][i - 1][0].get<double>(), 1e-4) << i;
  }
  // The generated part is the same as without echo; the text starts with the prompt's.
  const json& gen = plain["choices"][0]["logprobs"];
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(lp["tokens"][n + i], gen["tokens"][i]);
    EXPECT_NEAR(lp["token_logprobs"][n + i].get<double>(), gen["token_logprobs"][i].get<double>(), 1e-6);
  }
  const std::string text = echoed["choices"][0]["text"];
  const std::string generated = plain["choices"][0]["text"];
  ASSERT_GE(text.size(), generated.size());
  EXPECT_EQ(text.substr(text.size() - generated.size()), generated);
  EXPECT_GT(text.size(), generated.size()) << "the prompt's text is missing";
  EXPECT_EQ(echoed["usage"], plain["usage"]);

  // Streamed: the prompt first, as one chunk with its log-probabilities, then one per token.
  json body = {{"model", server_->model_id()}, {"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0},
               {"ignore_eos", true}, {"logprobs", 3}, {"echo", true}, {"stream", true}};
  const HttpResponse r = call("POST", "/v1/completions", key, body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<json> chunks = stream_chunks(r.body);
  ASSERT_GE(chunks.size(), 5u) << r.body;
  const json& head = chunks[0]["choices"][0];
  EXPECT_EQ(head["text"], text.substr(0, text.size() - generated.size()));
  EXPECT_EQ(head["logprobs"]["tokens"], json(std::vector<json>(lp["tokens"].begin(), lp["tokens"].begin() + n)));
  EXPECT_TRUE(head["logprobs"]["token_logprobs"][0].is_null());
  for (size_t i = 1; i < n; ++i) {
    EXPECT_NEAR(head["logprobs"]["token_logprobs"][i].get<double>(), lp["token_logprobs"][i].get<double>(), 1e-6);
  }
  std::string streamed_text;
  size_t token_chunks = 0;
  for (size_t c = 1; c < chunks.size(); ++c) {
    const json& choice = chunks[c]["choices"][0];
    streamed_text += choice["text"].get<std::string>();
    if (!choice["logprobs"].is_null()) {
      ASSERT_EQ(choice["logprobs"]["tokens"].size(), 1u);
      EXPECT_EQ(choice["logprobs"]["tokens"][0], lp["tokens"][n + token_chunks]);
      ++token_chunks;
    }
  }
  EXPECT_EQ(token_chunks, 4u);
  EXPECT_EQ(streamed_text, generated);
}

TEST_F(OpenAiFieldsTest, StreamedEchoWithoutLogprobsStartsWithThePrompt) {
  const auto [tenant, key] = make_tenant("t");
  json body = {{"model", server_->model_id()}, {"prompt", "The quick brown fox"}, {"max_tokens", 3},
               {"temperature", 0}, {"echo", true}, {"stream", true}};
  const HttpResponse r = call("POST", "/v1/completions", key, body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<json> chunks = stream_chunks(r.body);
  ASSERT_GE(chunks.size(), 2u) << r.body;
  EXPECT_EQ(chunks[0]["choices"][0]["text"], "The quick brown fox");
  EXPECT_TRUE(chunks[0]["choices"][0]["logprobs"].is_null());
}

// Found by schemathesis: a request whose own `timeout` ran out answered 503 overloaded_error, a
// server error for the client's choice. It is a 408; the server's own deadline stays a 503.
TEST_F(OpenAiFieldsTest, TheBodysOwnTimeoutPassingIsA408) {
  const auto [tenant, key] = make_tenant("t");
  const json e = completion(key, {{"timeout", 0.001}, {"max_tokens", 200}}, 408);
  EXPECT_EQ(e["error"]["type"], "timeout_error") << e.dump();
  completion(key, {{"timeout", 60}}, 200);
}

}  // namespace
}  // namespace quilt::testing
