// Tests of Limiter with explicit time points: concurrency, both buckets, Retry-After and refunds.
#include "tenants/limiter.h"

#include <gtest/gtest.h>

namespace quilt::tenants {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
const Limiter::Clock::time_point t0 = Limiter::Clock::time_point() + std::chrono::hours(1);

Limits limits(int64_t max_concurrent, int64_t rpm, int64_t tpm) {
  Limits l;
  l.max_concurrent = max_concurrent;
  l.requests_per_minute = rpm;
  l.tokens_per_minute = tpm;
  return l;
}

TEST(LimiterTest, ConcurrencyLimitHoldsUntilRelease) {
  Limiter lim;
  const Limits l = limits(2, 0, 0);
  EXPECT_TRUE(lim.admit("t", l, 10, t0).admitted);
  EXPECT_TRUE(lim.admit("t", l, 10, t0).admitted);
  const auto refused = lim.admit("t", l, 10, t0);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.reason, "max_concurrent");
  EXPECT_GE(refused.retry_after_s, 1);
  EXPECT_EQ(lim.in_flight("t"), 2);
  EXPECT_TRUE(lim.admit("other", l, 10, t0).admitted) << "limits are per tenant";

  lim.release("t", 10, 10, t0);
  EXPECT_EQ(lim.in_flight("t"), 1);
  EXPECT_TRUE(lim.admit("t", l, 10, t0).admitted);
  EXPECT_EQ(lim.in_flight("unknown"), 0);
}

TEST(LimiterTest, RequestsPerMinuteRefusesWithRetryAfterAndRefills) {
  Limiter lim;
  const Limits l = limits(0, 6, 0);  // one request per 10 s
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(lim.admit("t", l, 0, t0).admitted) << i;
  auto d = lim.admit("t", l, 0, t0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.reason, "requests_per_minute");
  EXPECT_EQ(d.retry_after_s, 10);

  d = lim.admit("t", l, 0, t0 + seconds(4));
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 6);
  d = lim.admit("t", l, 0, t0 + milliseconds(9999));
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 1) << "less than a second left still says 1";

  EXPECT_TRUE(lim.admit("t", l, 0, t0 + seconds(10)).admitted);
  EXPECT_FALSE(lim.admit("t", l, 0, t0 + seconds(10)).admitted);
  // A long idle time refills to capacity, never beyond.
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(lim.admit("t", l, 0, t0 + seconds(1000)).admitted);
  EXPECT_FALSE(lim.admit("t", l, 0, t0 + seconds(1000)).admitted);
}

TEST(LimiterTest, TokensPerMinuteRefusesWithRetryAfter) {
  Limiter lim;
  const Limits l = limits(0, 0, 600);  // 10 tokens per second
  EXPECT_TRUE(lim.admit("t", l, 600, t0).admitted);
  auto d = lim.admit("t", l, 100, t0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.reason, "tokens_per_minute");
  EXPECT_EQ(d.retry_after_s, 10);
  d = lim.admit("t", l, 100, t0 + seconds(5));
  EXPECT_EQ(d.retry_after_s, 5);
  EXPECT_TRUE(lim.admit("t", l, 100, t0 + seconds(10)).admitted);
}

TEST(LimiterTest, RefusedRequestsConsumeNothing) {
  Limiter lim;
  const Limits l = limits(1, 2, 100);
  EXPECT_TRUE(lim.admit("t", l, 100, t0).admitted);  // 1 request and all tokens left: 1, 0
  for (int i = 0; i < 5; ++i) EXPECT_EQ(lim.admit("t", l, 50, t0).reason, "max_concurrent");
  lim.release("t", 100, 100, t0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(lim.admit("t", l, 50, t0).reason, "tokens_per_minute");
  EXPECT_EQ(lim.in_flight("t"), 0);
  // The refusals took no request from the requests bucket: one is still there.
  EXPECT_TRUE(lim.admit("t", l, 0, t0).admitted);
  lim.release("t", 0, 0, t0);
  EXPECT_EQ(lim.admit("t", l, 0, t0).reason, "requests_per_minute");
}

TEST(LimiterTest, ReleaseRefundsUnusedTokensButNeverAboveCapacity) {
  Limiter lim;
  const Limits l = limits(0, 0, 1000);
  ASSERT_TRUE(lim.admit("t", l, 1000, t0).admitted);
  lim.release("t", /*reserved=*/1000, /*used=*/300, t0);
  EXPECT_TRUE(lim.admit("t", l, 700, t0).admitted);
  EXPECT_FALSE(lim.admit("t", l, 1, t0).admitted);

  Limiter full;
  ASSERT_TRUE(full.admit("t", l, 100, t0).admitted);
  // A minute later the bucket is full again; the refund must not push it past capacity.
  full.release("t", 100, 0, t0 + seconds(60));
  EXPECT_TRUE(full.admit("t", l, 1000, t0 + seconds(60)).admitted);
  EXPECT_FALSE(full.admit("t", l, 1, t0 + seconds(60)).admitted);
}

TEST(LimiterTest, RequestLargerThanTheBucketWaitsForAFullBucketAndLeavesDebt) {
  Limiter lim;
  const Limits l = limits(0, 0, 100);  // 100/60 tokens per second
  EXPECT_TRUE(lim.admit("t", l, 250, t0).admitted) << "a full bucket admits an oversize request";
  auto d = lim.admit("t", l, 10, t0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 96);  // from -150 to 10 at 100/60 per second
  EXPECT_TRUE(lim.admit("t", l, 10, t0 + seconds(96)).admitted);
  d = lim.admit("t", l, 250, t0 + seconds(96));
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 60) << "an oversize request needs the whole bucket";
  EXPECT_TRUE(lim.admit("t", l, 250, t0 + seconds(156)).admitted);
}

TEST(LimiterTest, UnlimitedNeverRefuses) {
  Limiter lim;
  const Limits l;  // all zero
  for (int i = 0; i < 10000; ++i)
    ASSERT_TRUE(lim.admit("t", l, int64_t{1} << 40, t0).admitted) << i;
  EXPECT_EQ(lim.in_flight("t"), 10000);
}

TEST(LimiterTest, ChangedLimitsApplyAtOnceAndTimeNeverRunsBackwards) {
  Limiter lim;
  EXPECT_TRUE(lim.admit("t", limits(0, 10, 0), 0, t0).admitted);  // 9 left
  // Lowered to 3: the bucket is clamped to the new capacity.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(lim.admit("t", limits(0, 3, 0), 0, t0).admitted);
  EXPECT_FALSE(lim.admit("t", limits(0, 3, 0), 0, t0).admitted);
  // An older time point (another thread's `now`) refills nothing and rewinds nothing.
  EXPECT_FALSE(lim.admit("t", limits(0, 3, 0), 0, t0 - seconds(30)).admitted);
  EXPECT_TRUE(lim.admit("t", limits(0, 3, 0), 0, t0 + seconds(20)).admitted);
  // Unlimited, then limited again: the bucket starts full.
  EXPECT_TRUE(lim.admit("t", limits(0, 0, 0), 0, t0 + seconds(20)).admitted);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(lim.admit("t", limits(0, 3, 0), 0, t0 + seconds(20)).admitted) << i;
  EXPECT_FALSE(lim.admit("t", limits(0, 3, 0), 0, t0 + seconds(20)).admitted);
}

}  // namespace
}  // namespace quilt::tenants
