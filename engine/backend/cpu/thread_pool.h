// The CPU backend's worker threads: one pool per process, sized by --threads, shared by every op
// (GEMMs, attention, norms, LoRA) so that no two parallel regions ever oversubscribe the cores.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quilt::engine::cpu {

class ThreadPool {
 public:
  // `threads` workers in all, the caller of parallel_for included (so threads - 1 are spawned).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over [0, n) cut into chunks of at least `grain` items, on the caller and
  // the workers; returns when every chunk is done. Not reentrant: fn must not call parallel_for.
  // One caller at a time (the engine thread); a second concurrent caller runs serially.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                   // guarded by mu_
  std::atomic<uint64_t> generation_{0}; // bumped once per parallel_for
  std::atomic<int> pending_workers_{0}; // workers still inside the current job
  std::atomic<bool> busy_{false};       // a parallel_for is running
  // The current job, written before generation_ is bumped.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> next_{0};
};

// The process's pool. set_num_threads (from --threads, before the first use) fixes its size; by
// default it has as many threads as the process may run on (sched_getaffinity).
ThreadPool& pool();
void set_num_threads(int threads);
int num_threads();

}  // namespace quilt::engine::cpu
