// parse_completion_request on bodies the fuzzer found: each is refused with a 400, never thrown.
#include "gateway/completion_request.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace quilt::gateway
