// Tests of Limiter::headroom: what the x-ratelimit-* headers report.
#include <gtest/gtest.h>

#include "tenants/limiter.h"

namespace quilt::tenants {
namespace {

using namespace std::chrono_literals;

TEST(LimiterHeadroomTest, NoLimitsNoViews) {
  Limiter l;
  Limits limits;
  limits.max_concurrent = 3;  // not a per-minute limit: no header
  auto h = l.headroom("t_a", limits);
  EXPECT_FALSE(h.requests);
  EXPECT_FALSE(h.tokens);
}

TEST(LimiterHeadroomTest, ReportsWhatAdmitsConsumeAndRefills) {
  Limiter l;
  Limits limits;
  limits.requests_per_minute = 60;
  limits.tokens_per_minute = 600;
  const auto t0 = Limiter::Clock::time_point{} + 1000s;
  auto h = l.headroom("t_a", limits, t0);
  ASSERT_TRUE(h.requests && h.tokens);
  EXPECT_EQ(h.requests->limit, 60);
  EXPECT_EQ(h.requests->remaining, 60);
  EXPECT_DOUBLE_EQ(h.requests->reset_seconds, 0);
  EXPECT_EQ(h.tokens->remaining, 600);

  ASSERT_TRUE(l.admit("t_a", limits, 100, t0).admitted);
  ASSERT_TRUE(l.admit("t_a", limits, 50, t0).admitted);
  h = l.headroom("t_a", limits, t0);
  EXPECT_EQ(h.requests->remaining, 58);
  EXPECT_NEAR(h.requests->reset_seconds, 2.0, 1e-9);  // 1 request per second
  EXPECT_EQ(h.tokens->remaining, 450);
  EXPECT_NEAR(h.tokens->reset_seconds, 15.0, 1e-9);   // 10 tokens per second

  h = l.headroom("t_a", limits, t0 + 1s);  // refilled by one request and 10 tokens
  EXPECT_EQ(h.requests->remaining, 59);
  EXPECT_EQ(h.tokens->remaining, 460);
  // headroom itself consumes nothing
  h = l.headroom("t_a", limits, t0 + 1s);
  EXPECT_EQ(h.requests->remaining, 59);
  // Other tenants are independent.
  EXPECT_EQ(l.headroom("t_b", limits, t0).requests->remaining, 60);
}

TEST(LimiterHeadroomTest, DebtShowsZeroRemaining) {
  Limiter l;
  Limits limits;
  limits.tokens_per_minute = 60;
  const auto t0 = Limiter::Clock::time_point{} + 1000s;
  ASSERT_TRUE(l.admit("t_a", limits, 120, t0).admitted);  // larger than the bucket: in debt
  auto h = l.headroom("t_a", limits, t0);
  EXPECT_FALSE(h.requests);
  ASSERT_TRUE(h.tokens);
  EXPECT_EQ(h.tokens->remaining, 0);
  EXPECT_NEAR(h.tokens->reset_seconds, 120.0, 1e-9);  // 60 tokens of debt + 60 to fill, 1/s
}

}  // namespace
}  // namespace quilt::tenants
