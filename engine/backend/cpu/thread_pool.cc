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

// Tells a hyperthreaded core that this thread is spinning, so that its sibling runs at full speed.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

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
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::run_one(uint32_t gen) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(s >> 32) != gen) return false;
    // The chunk count is part of the state, not a separate field: a worker late from job g must
    // not compare g's index with the next job's count while that job is being set up.
    const int64_t index = static_cast<int64_t>(s & 0xffffu);
    if (index >= static_cast<int64_t>((s >> 16) & 0xffffu)) return false;
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      const int64_t chunk = chunk_.load(std::memory_order_relaxed);
      const int64_t begin = index * chunk;
      (*fn_.load(std::memory_order_relaxed))(begin,
                                             std::min(n_.load(std::memory_order_relaxed), begin + chunk));
      done_.fetch_add(1, std::memory_order_release);
      return true;
    }
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
  // A few chunks per thread balance uneven work without much contention on state_ (at most
  // 0xffff: the count and the next index share state_'s low 32 bits).
  const int64_t chunks = std::min<int64_t>({(n + grain - 1) / grain, 4 * int64_t{size()}, 0xffff});
  const int64_t chunk = (n + chunks - 1) / chunks;
  const int64_t num_chunks = (n + chunk - 1) / chunk;
  fn_.store(&fn, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  chunk_.store(chunk, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const uint32_t gen = ++generation_;
  {
    std::lock_guard lock(mu_);  // a worker between its check and its wait cannot miss this
    state_.store(static_cast<uint64_t>(gen) << 32 | static_cast<uint64_t>(num_chunks) << 16,
                 std::memory_order_release);
  }
  wake_.notify_all();
  while (run_one(gen)) {
  }
  // Claimed chunks still running elsewhere: spin briefly, then give the core to whoever runs them.
  for (int spins = 0; done_.load(std::memory_order_acquire) != num_chunks; ++spins) {
    if (spins < 1024) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  busy_.store(false, std::memory_order_release);
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  const auto current = [this] {
    return static_cast<uint32_t>(state_.load(std::memory_order_acquire) >> 32);
  };
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    while (current() == seen && std::chrono::steady_clock::now() < spin_until) {
      cpu_relax();
    }
    if (current() == seen) {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || current() != seen; });
      if (stop_) return;
    }
    seen = current();
    while (run_one(seen)) {
    }
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
