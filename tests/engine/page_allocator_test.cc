// PageAllocator: all-or-nothing allocation and reuse.
#include "engine/memory/page_allocator.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

namespace quilt::engine {
namespace {

TEST(PageAllocatorTest, HandsOutDistinctPagesUntilFull) {
  PageAllocator a(5);
  std::vector<int32_t> pages;
  ASSERT_TRUE(a.allocate(3, pages));
  ASSERT_TRUE(a.allocate(2, pages));
  EXPECT_EQ(std::set<int32_t>(pages.begin(), pages.end()).size(), 5u);
  EXPECT_EQ(a.num_free(), 0);
  EXPECT_FALSE(a.allocate(1, pages));
  EXPECT_EQ(pages.size(), 5u);
}

TEST(PageAllocatorTest, FailedAllocationChangesNothing) {
  PageAllocator a(4);
  std::vector<int32_t> pages;
  ASSERT_TRUE(a.allocate(3, pages));
  EXPECT_FALSE(a.allocate(2, pages));
  EXPECT_EQ(pages.size(), 3u);
  EXPECT_EQ(a.num_free(), 1);
}

TEST(PageAllocatorTest, FreedPagesComeBack) {
  PageAllocator a(2);
  std::vector<int32_t> p1, p2;
  ASSERT_TRUE(a.allocate(2, p1));
  a.free(p1);
  EXPECT_EQ(a.num_used(), 0);
  ASSERT_TRUE(a.allocate(2, p2));
  std::sort(p1.begin(), p1.end());
  std::sort(p2.begin(), p2.end());
  EXPECT_EQ(p1, p2);
}

}  // namespace
}  // namespace quilt::engine
