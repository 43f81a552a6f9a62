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
  void worker_loop();
  // Claims and runs one chunk of job `gen`; false when none is left or the job is over.
  bool run_one(uint32_t gen);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  // The current job: its generation (bits 32-63), its number of chunks (16-31) and the next chunk
  // to claim (0-15).
  // A chunk is claimed by a compare-and-swap that also checks the generation, so a worker that
  // wakes late can never take a chunk of a later job, and the caller waits only for chunks that
  // were claimed, never for a worker the OS has not scheduled yet.
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};  // chunks of the current job finished
  std::atomic<bool> busy_{false}; // a parallel_for is running
  // The job's parameters, written before state_ publishes its generation, stable until its last
  // chunk is done (atomics only so that a late worker's read of a stale value is well defined).
  std::atomic<const std::function<void(int64_t, int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> chunk_{1};
  uint32_t generation_ = 0;  // the caller's
};

// The process's pool. set_num_threads (from --threads, before the first use) fixes its size; by
// default it has as many threads as the process may run on (sched_getaffinity).
ThreadPool& pool();
void set_num_threads(int threads);
int num_threads();

}  // namespace quilt::engine::cpu
