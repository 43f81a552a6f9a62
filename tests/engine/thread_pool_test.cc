// The CPU backend's worker pool: every index runs exactly once, jobs never bleed into each other,
// and a second concurrent caller runs its job serially instead of waiting or corrupting the first.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "engine/backend/cpu/thread_pool.h"

namespace quilt::engine::cpu {
namespace {

TEST(ThreadPoolTest, EveryIndexRunsExactlyOnceAcrossManyJobs) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (int job = 0; job < 2000; ++job) {
    const int64_t n = 1 + job % 97;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, 1 + job % 5, [&](int64_t begin, int64_t end) {
      ASSERT_LE(0, begin);
      ASSERT_LE(end, n);
      for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "job " << job << " index " << i;
  }
}

TEST(ThreadPoolTest, WorkRunsOnMoreThanOneThreadAndSmallJobsStayOnTheCaller) {
  ThreadPool pool(2);
  std::atomic<int> on_caller{0}, elsewhere{0};
  const auto caller = std::this_thread::get_id();
  for (int job = 0; job < 200 && elsewhere == 0; ++job) {
    pool.parallel_for(64, 1, [&](int64_t, int64_t) {
      (std::this_thread::get_id() == caller ? on_caller : elsewhere).fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    });
  }
  EXPECT_GT(elsewhere.load(), 0);
  bool serial = true;
  pool.parallel_for(4, 4, [&](int64_t b, int64_t e) {
    serial = serial && b == 0 && e == 4 && std::this_thread::get_id() == caller;
  });
  EXPECT_TRUE(serial) << "n <= grain runs as one call on the caller";
}

TEST(ThreadPoolTest, AConcurrentCallerRunsItsJobWhole) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum_a{0}, sum_b{0};
  std::thread other([&] {
    for (int i = 0; i < 300; ++i) {
      pool.parallel_for(100, 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) sum_b += k;
      });
    }
  });
  for (int i = 0; i < 300; ++i) {
    pool.parallel_for(100, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) sum_a += k;
    });
  }
  other.join();
  EXPECT_EQ(sum_a.load(), 300 * 4950);
  EXPECT_EQ(sum_b.load(), 300 * 4950);
}

TEST(ThreadPoolTest, SetNumThreadsResizesTheProcessPool) {
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  EXPECT_EQ(pool().size(), 3);
  set_num_threads(1);
  EXPECT_EQ(pool().size(), 1);
  set_num_threads(0);  // back to the default for the other tests
  EXPECT_GE(num_threads(), 1);
}

}  // namespace
}  // namespace quilt::engine::cpu
