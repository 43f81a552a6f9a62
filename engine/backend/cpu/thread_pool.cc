#include "engine/backend/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace quilt::engine::cpu {
namespace {

// Workers spin this long for the next job before sleeping: an engine step issues hundreds of
// parallel ops back to back, and a condition-variable wake-up costs tens of microseconds each.
constexpr auto kSpin = std::chrono::microseconds(200);

int default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_mu;
int g_threads = 0;  // 0: default
std::unique_ptr<ThreadPool> g_pool;

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    const int64_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= n_) return;
    (*fn_)(begin, std::min(n_, begin + chunk_));
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  bool expected = false;
  if (workers_.empty() || n <= grain || !busy_.compare_exchange_strong(expected, true)) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balance uneven work without much contention on next_.
  const int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, 4 * size());
  fn_ = &fn;
  n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  next_.store(0, std::memory_order_relaxed);
  pending_workers_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_chunks();
  while (pending_workers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  fn_ = nullptr;
  busy_.store(false, std::memory_order_release);
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    while (generation_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
      if (stop_) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    run_chunks();
    pending_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

ThreadPool& pool() {
  std::lock_guard lock(g_mu);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(g_threads > 0 ? g_threads : default_threads());
  return *g_pool;
}

void set_num_threads(int threads) {
  std::lock_guard lock(g_mu);
  g_threads = threads;
  g_pool.reset();
}

int num_threads() {
  std::lock_guard lock(g_mu);
  return g_pool ? g_pool->size() : (g_threads > 0 ? g_threads : default_threads());
}

}  // namespace quilt::engine::cpu
