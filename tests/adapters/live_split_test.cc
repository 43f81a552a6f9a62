// Tests of canary splits: validation, the primary version, and how requests are spread.
#include "adapters/live_split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

namespace quilt::adapters {
namespace {

bool known(int64_t v) { return v >= 1 && v <= 5; }

TEST(LiveSplitTest, ValidatesSharesAndVersions) {
  EXPECT_TRUE(validate_split({{3, 0.9}, {4, 0.1}}, known).ok());
  EXPECT_TRUE(validate_split({{3, 1.0}}, known).ok());
  EXPECT_TRUE(validate_split({{1, 1.0 / 3}, {2, 1.0 / 3}, {3, 1.0 / 3}}, known).ok());
  EXPECT_TRUE(validate_split({{3, 0.9 + 5e-7}, {4, 0.1}}, known).ok());  // within 1e-6

  EXPECT_TRUE(validate_split({}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{3, 0.9}, {4, 0.2}}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{3, 0.9}, {4, 0.1 - 2e-6}}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{3, 1.0}, {4, 0.0}}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{3, 1.5}, {4, -0.5}}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{3, std::nan("")}, {4, 1.0}}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{3, std::numeric_limits<double>::infinity()}}, known).IsInvalidArgument());
  EXPECT_TRUE(validate_split({{0, 1.0}}, known).IsInvalidArgument());
  const Status missing = validate_split({{3, 0.5}, {9, 0.5}}, known);
  EXPECT_TRUE(missing.IsNotFound());
  EXPECT_NE(missing.message().find("9"), std::string::npos) << missing.message();
  LiveSplit many;
  for (int64_t v = 1; v <= static_cast<int64_t>(kMaxSplitVersions) + 1; ++v) {
    many[v] = 1.0 / static_cast<double>(kMaxSplitVersions + 1);
  }
  EXPECT_TRUE(validate_split(many, [](int64_t) { return true; }).IsInvalidArgument());
}

TEST(LiveSplitTest, PrimaryIsTheLargestShareAndTheLowerVersionOnATie) {
  EXPECT_EQ(primary_version({{3, 0.9}, {4, 0.1}}), 3);
  EXPECT_EQ(primary_version({{3, 0.2}, {4, 0.8}}), 4);
  EXPECT_EQ(primary_version({{3, 0.5}, {4, 0.5}}), 3);
  EXPECT_EQ(primary_version({{7, 1.0}}), 7);
}

// Every prefix of the request sequence follows the shares closely: a canary gets its 10% from
// the first requests on, not only on average.
TEST(LiveSplitTest, PicksFollowTheSharesOverEveryRunOfRequests) {
  const LiveSplit split = {{3, 0.9}, {4, 0.1}};
  std::map<int64_t, int> count;
  for (uint64_t n = 0; n < 10000; ++n) {
    ++count[pick_version(split, n)];
    const double seen = static_cast<double>(n + 1);
    if (n >= 20) {
      EXPECT_NEAR(count[4] / seen, 0.1, 2.0 / seen + 0.01) << "after " << n + 1 << " requests";
    }
  }
  EXPECT_EQ(count.size(), 2u);
  EXPECT_NEAR(count[3], 9000, 5);
  EXPECT_NEAR(count[4], 1000, 5);

  const LiveSplit three = {{1, 0.5}, {2, 0.3}, {5, 0.2}};
  count.clear();
  for (uint64_t n = 0; n < 1000; ++n) ++count[pick_version(three, n)];
  EXPECT_NEAR(count[1], 500, 5);
  EXPECT_NEAR(count[2], 300, 5);
  EXPECT_NEAR(count[5], 200, 5);
  // Far along the sequence too (a long-running server).
  count.clear();
  for (uint64_t n = (uint64_t{1} << 62); n < (uint64_t{1} << 62) + 1000; ++n) ++count[pick_version(split, n)];
  EXPECT_NEAR(count[4], 100, 5);
  EXPECT_EQ(pick_version({{8, 1.0}}, 12345), 8);
}

}  // namespace
}  // namespace quilt::adapters
