// parse_completion_request on bodies the fuzzer found: each is refused with a 400, never thrown.
#include "gateway/completion_request.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace quilt::gateway {
namespace {

TEST(CompletionRequest, ContentPartWithANonStringTypeIsRefusedNotThrown) {
  // completion_request_fuzz, 2026-12-02: json::value("type", "") threw type_error on "type": 3.
  const std::string body =
      R"({"model":"a@2","messages":[{"role":"user","content":[{"type":3,"text":"hi"}]}]})";
  std::string param;
  auto r = parse_completion_request(body, /*chat=*/true, &param);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
  EXPECT_EQ(param, "messages[0].content");
}

TEST(CompletionRequest, TextPartsAreJoined) {
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})";
  std::string param;
  auto r = parse_completion_request(body, /*chat=*/true, &param);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value().messages[0]["content"], "ab");
}

// The body's field that a refusal names, or "" when the body parses.
std::string refused_field(const std::string& body, bool chat) {
  std::string param;
  auto r = parse_completion_request(body, chat, &param);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
  return param;
}

TEST(CompletionRequest, LogitBiasAndPenaltiesAreParsed) {
  std::string param;
  auto r = parse_completion_request(
      R"({"prompt":"x","logit_bias":{"7":-100,"12":2.5},"presence_penalty":0.5,"frequency_penalty":-1})",
      /*chat=*/false, &param);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& s = r.value().sampling;
  EXPECT_EQ(s.logit_bias, (std::vector<std::pair<int32_t, float>>{{12, 2.5f}, {7, -100.f}}));
  EXPECT_FLOAT_EQ(s.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.frequency_penalty, -1.f);
}

TEST(CompletionRequest, BadLogitBiasAndPenaltiesNameTheirField) {
  EXPECT_EQ(refused_field(R"({"prompt":"x","logit_bias":[1]})", false), "logit_bias");
  EXPECT_EQ(refused_field(R"({"prompt":"x","logit_bias":{"a":1}})", false), "logit_bias");
  EXPECT_EQ(refused_field(R"({"prompt":"x","logit_bias":{"-1":1}})", false), "logit_bias");
  EXPECT_EQ(refused_field(R"({"prompt":"x","logit_bias":{"1":101}})", false), "logit_bias");
  EXPECT_EQ(refused_field(R"({"prompt":"x","logit_bias":{"99999999999":1}})", false), "logit_bias");
  EXPECT_EQ(refused_field(R"({"prompt":"x","presence_penalty":3})", false), "presence_penalty");
  EXPECT_EQ(refused_field(R"({"prompt":"x","frequency_penalty":"high"})", false), "frequency_penalty");
}

TEST(CompletionRequest, UnimplementedFieldsAreRefusedByName) {
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}],)";
  EXPECT_EQ(refused_field(chat + R"("tools":[{"type":"function"}]})", true), "tools");
  EXPECT_EQ(refused_field(chat + R"("tool_choice":"auto"})", true), "tool_choice");
  EXPECT_EQ(refused_field(chat + R"("functions":[]})", true), "functions");
  EXPECT_EQ(refused_field(chat + R"("response_format":{"type":"json_object"}})", true), "response_format");
  EXPECT_EQ(refused_field(chat + R"("response_format":{"type":"text"}})", true), "");
  EXPECT_EQ(refused_field(chat + R"("top_logprobs":3})", true), "top_logprobs");
  EXPECT_EQ(refused_field(chat + R"("logprobs":true,"top_logprobs":3})", true), "");
  EXPECT_EQ(refused_field(chat + R"("modalities":["text","audio"]})", true), "modalities");
  EXPECT_EQ(refused_field(
      R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})", true),
      "messages[0].content");
  EXPECT_EQ(refused_field(R"({"prompt":"x","suffix":"end"})", false), "suffix");
  EXPECT_EQ(refused_field(R"({"prompt":"x","suffix":""})", false), "");
  EXPECT_EQ(refused_field(R"({"prompt":"x","best_of":3,"n":2})", false), "best_of");
  EXPECT_EQ(refused_field(R"({"prompt":"x","best_of":2,"n":2})", false), "");
  EXPECT_EQ(refused_field(R"({"prompt":"x","echo":true,"logprobs":2})", false), "");  // prompt logprobs
  EXPECT_EQ(refused_field(R"({"prompt":"x","echo":true})", false), "");
  // Found by schemathesis: a top_p above 0 that is 0 as a float passed the gateway, then the
  // engine refused it with a message that contradicted the value.
  EXPECT_EQ(refused_field(R"({"prompt":"x","top_p":5e-324})", false), "top_p");
}

}  // namespace
}  // namespace quilt::gateway
