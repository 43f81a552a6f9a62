// Tests of gateway/rate_limit_headers: OpenAI's duration format and the header set.
#include "gateway/rate_limit_headers.h"

#include <gtest/gtest.h>

namespace quilt::gateway {
namespace {

TEST(RateLimitHeadersTest, DurationsAsOpenAiWritesThem) {
  EXPECT_EQ(openai_duration(0), "0s");
  EXPECT_EQ(openai_duration(-3), "0s");
  EXPECT_EQ(openai_duration(0.017), "17ms");
  EXPECT_EQ(openai_duration(0.0001), "1ms");  // rounded up: never "0s" while not yet full
  EXPECT_EQ(openai_duration(1), "1s");
  EXPECT_EQ(openai_duration(6.5), "6.5s");
  EXPECT_EQ(openai_duration(60), "1m0s");
  EXPECT_EQ(openai_duration(90.25), "1m30.25s");
  EXPECT_EQ(openai_duration(3600), "1h0m0s");
}

TEST(RateLimitHeadersTest, OnlyLimitsThatAreSet) {
  tenants::Limiter::Headroom h;
  EXPECT_TRUE(rate_limit_headers(h).empty());
  h.tokens = tenants::Limiter::BucketView{1000, 750, 15};
  auto headers = rate_limit_headers(h);
  ASSERT_EQ(headers.size(), 3u);
  EXPECT_EQ(headers[0], (std::pair<std::string, std::string>{"x-ratelimit-limit-tokens", "1000"}));
  EXPECT_EQ(headers[1], (std::pair<std::string, std::string>{"x-ratelimit-remaining-tokens", "750"}));
  EXPECT_EQ(headers[2], (std::pair<std::string, std::string>{"x-ratelimit-reset-tokens", "15s"}));
  h.requests = tenants::Limiter::BucketView{60, 59, 1};
  headers = rate_limit_headers(h);
  ASSERT_EQ(headers.size(), 6u);
  EXPECT_EQ(headers[0].first, "x-ratelimit-limit-requests");
  EXPECT_EQ(headers[2], (std::pair<std::string, std::string>{"x-ratelimit-reset-requests", "1s"}));
}

}  // namespace
}  // namespace quilt::gateway
