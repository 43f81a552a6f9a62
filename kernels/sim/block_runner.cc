// Block execution: fibers for a block's threads, a scheduler that runs each until it blocks at a
// barrier or warp collective, and the checks of synccheck (divergent barriers, threads that exit
// while others wait, warp collectives whose lanes never all arrive).
#include "kernels/sim/block_runner.h"

#include <signal.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/sim/device_api.h"
#include "kernels/sim/fiber.h"
#include "kernels/sim/sim_runtime.h"
#include "kernels/sim/shared_check.h"

namespace quilt::sim {

thread_local bool g_in_kernel = false;
thread_local uint64_t g_accesses_since_wait = 0;

namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxReportsPerLaunch = 8;

enum class State : uint8_t { kRunnable, kBarrier, kWarpOp, kExited };

struct SimThread {
  Context ctx;
  uint3 idx;
  int32_t tid = 0, lane = 0, warp = 0;
  State state = State::kRunnable;
  const char* file = "";  // site of the barrier or warp collective it waits at
  int line = 0;
  WarpOp op = WarpOp::kSync;
  unsigned mask = 0;
  uint64_t value = 0;
  int arg = 0, width = kWarpSize;
  uint64_t result = 0;
};

struct Block {
  std::string_view kernel;
  const std::function<void()>* body = nullptr;
  uint3 block_idx{};
  dim3 block_dim, grid_dim;
  int32_t n = 0;
  std::vector<SimThread> threads;
  std::vector<uint32_t> warp_epoch;
  std::vector<int32_t> warp_waiting;  // lanes of each warp waiting in a warp collective
  uint32_t barrier_epoch = 0;
  std::deque<int32_t> ready;
  Context scheduler;
  SimThread* current = nullptr;
  bool abandoned = false;
};

struct Launch {
  std::map<std::string, int> reports;  // per check ("memcheck", "racecheck", ...)
  bool aborted = false;  // a fatal fault: the rest of the grid does not run
  std::vector<uint8_t> dynamic_shared;
  size_t dyn_offset = 0, dyn_bytes = 0;
};

thread_local Block* t_block = nullptr;
thread_local Launch* t_launch = nullptr;
thread_local StackPool* t_stacks = nullptr;

const uint3 kZero3{0, 0, 0};
const dim3 kOne3(1, 1, 1);

std::string xyz(const uint3& v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::string site(const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  return std::string(slash != nullptr ? slash + 1 : file) + ":" + std::to_string(line);
}

// A fault inside the running kernel, capped per launch so one bad index does not flood the log.
void kernel_fault(const std::string& what) {
  const int n = ++t_launch->reports[what.substr(0, what.find(':'))];
  if (n > kMaxReportsPerLaunch) return;
  std::string msg = "kernel " + std::string(t_block->kernel) + ": " + what;
  if (n == kMaxReportsPerLaunch) msg += " (further faults of this kind in this launch not shown)";
  report(std::move(msg));
}

void yield_to_scheduler(SimThread& t) {
  g_in_kernel = false;
  switch_context(t.ctx, t_block->scheduler);
  g_in_kernel = true;
}

[[noreturn]] void fiber_entry() {
  Block& b = *t_block;
  (*b.body)();
  SimThread& t = *b.current;
  t.state = State::kExited;
  g_in_kernel = false;
  switch_context(t.ctx, b.scheduler);
  std::abort();  // an exited fiber is never resumed
}

int src_lane(const SimThread& t) {
  const int w = t.width;
  const int base = t.lane / w * w;
  switch (t.op) {
    case WarpOp::kShflIdx:
      return base + ((t.arg % w) + w) % w;
    case WarpOp::kShflUp:
      return t.lane - t.arg < base ? t.lane : t.lane - t.arg;
    case WarpOp::kShflDown:
      return t.lane + t.arg >= base + w ? t.lane : t.lane + t.arg;
    case WarpOp::kShflXor: {
      const int s = t.lane ^ t.arg;
      return s >= base + w ? t.lane : s;
    }
    default:
      return t.lane;
  }
}

// Completes warp w's collective if every lane of `mask` has arrived at the same one; the lanes'
// results are set and they become runnable (all but the caller, which simply goes on).
bool try_complete(Block& b, int32_t w, unsigned mask, const SimThread& first) {
  if (b.warp_waiting[static_cast<size_t>(w)] < __builtin_popcount(mask)) return false;
  SimThread* lanes[kWarpSize] = {};
  for (int l = 0; l < kWarpSize; ++l) {
    if ((mask >> l & 1u) == 0) continue;
    SimThread& s = b.threads[w * kWarpSize + l];
    if (s.state != State::kWarpOp || s.mask != mask || s.op != first.op) return false;
    lanes[l] = &s;
  }
  const bool is_signed = first.arg != 0;
  uint64_t ballot = 0, sum = 0;
  int64_t smin = INT64_MAX, smax = INT64_MIN;
  uint64_t umin = UINT64_MAX, umax = 0;
  for (int l = 0; l < kWarpSize; ++l) {
    if (lanes[l] == nullptr) continue;
    const uint64_t v = lanes[l]->value;
    if (v != 0) ballot |= uint64_t{1} << l;
    const auto sv = static_cast<int64_t>(static_cast<int32_t>(v));
    const auto uv = static_cast<uint64_t>(static_cast<uint32_t>(v));
    sum += uv;
    smin = std::min(smin, sv);
    smax = std::max(smax, sv);
    umin = std::min(umin, uv);
    umax = std::max(umax, uv);
  }
  for (int l = 0; l < kWarpSize; ++l) {
    SimThread* s = lanes[l];
    if (s == nullptr) continue;
    switch (first.op) {
      case WarpOp::kSync:
        s->result = 0;
        break;
      case WarpOp::kShflIdx:
      case WarpOp::kShflUp:
      case WarpOp::kShflDown:
      case WarpOp::kShflXor: {
        const int src = src_lane(*s);
        if (src < 0 || src >= kWarpSize || lanes[src] == nullptr) {
          kernel_fault("synccheck: warp shuffle at " + site(s->file, s->line) + ": " + thread_name(s->tid) +
                       " reads lane " + std::to_string(src) + ", which is not in the mask");
          s->result = s->value;
        } else {
          s->result = lanes[src]->value;
        }
        break;
      }
      case WarpOp::kBallot:
        s->result = ballot;
        break;
      case WarpOp::kAny:
        s->result = ballot != 0;
        break;
      case WarpOp::kAll:
        s->result = ballot == mask;
        break;
      case WarpOp::kReduceAdd:
        s->result = static_cast<uint32_t>(sum);
        break;
      case WarpOp::kReduceMin:
        s->result = is_signed ? static_cast<uint32_t>(smin) : umin;
        break;
      case WarpOp::kReduceMax:
        s->result = is_signed ? static_cast<uint32_t>(smax) : umax;
        break;
      case WarpOp::kMatchAny: {
        uint64_t m = 0;
        for (int k = 0; k < kWarpSize; ++k) {
          if (lanes[k] != nullptr && lanes[k]->value == s->value) m |= uint64_t{1} << k;
        }
        s->result = m;
        break;
      }
    }
  }
  ++b.warp_epoch[w];
  b.warp_waiting[static_cast<size_t>(w)] -= __builtin_popcount(mask);
  for (int l = 0; l < kWarpSize; ++l) {
    SimThread* s = lanes[l];
    if (s == nullptr) continue;
    s->state = State::kRunnable;
    if (s != b.current) b.ready.push_back(s->tid);
  }
  return true;
}

// Nothing is runnable: release a barrier every live thread waits at, finish warp collectives whose
// missing lanes have exited, or report the deadlock. False when the block cannot go on.
bool resolve(Block& b) {
  std::vector<SimThread*> at_barrier, in_warp_op;
  int exited = 0;
  for (SimThread& t : b.threads) {
    if (t.state == State::kBarrier) at_barrier.push_back(&t);
    if (t.state == State::kWarpOp) in_warp_op.push_back(&t);
    if (t.state == State::kExited) ++exited;
  }
  if (!in_warp_op.empty()) {
    for (SimThread* t : in_warp_op) {
      if (t->state != State::kWarpOp) continue;  // completed by an earlier iteration
      unsigned live = t->mask;
      std::string gone;
      for (int l = 0; l < kWarpSize; ++l) {
        const SimThread& s = b.threads[t->warp * kWarpSize + l];
        if ((t->mask >> l & 1u) != 0 && s.state == State::kExited) {
          live &= ~(1u << l);
          gone += " " + std::to_string(l);
        }
      }
      if (gone.empty()) continue;
      kernel_fault("synccheck: warp collective at " + site(t->file, t->line) + " (mask 0x" +
                   [&] { char h[16]; std::snprintf(h, sizeof h, "%08x", t->mask); return std::string(h); }() +
                   "): lanes" + gone + " of warp " + std::to_string(t->warp) + " exited without joining it");
      for (int l = 0; l < kWarpSize; ++l) {
        SimThread& s = b.threads[t->warp * kWarpSize + l];
        if ((live >> l & 1u) != 0 && s.state == State::kWarpOp && s.mask == t->mask) s.mask = live;
      }
      b.current = nullptr;
      if (try_complete(b, t->warp, live, *t)) return true;
    }
    const SimThread& t = *in_warp_op.front();
    std::string who;
    for (int l = 0; l < kWarpSize; ++l) {
      const SimThread& s = b.threads[t.warp * kWarpSize + l];
      if ((t.mask >> l & 1u) == 0 || (s.state == State::kWarpOp && s.mask == t.mask)) continue;
      who += " lane " + std::to_string(l) +
             (s.state == State::kBarrier ? " waits at __syncthreads() at " + site(s.file, s.line)
                                         : " waits at another warp collective at " + site(s.file, s.line)) + ";";
    }
    kernel_fault("synccheck: deadlock: " + thread_name(t.tid) + " of block " + xyz(b.block_idx) +
                 " waits in a warp collective at " + site(t.file, t.line) + " that never completes:" + who);
    return false;
  }
  if (at_barrier.empty()) return false;
  if (exited > 0) {
    const SimThread* e = nullptr;
    for (const SimThread& t : b.threads) {
      if (t.state == State::kExited) { e = &t; break; }
    }
    kernel_fault("synccheck: " + std::to_string(exited) + " thread(s) of block " + xyz(b.block_idx) +
                 " (first " + thread_name(e->tid) + ") exited while " + std::to_string(at_barrier.size()) +
                 " wait at __syncthreads() at " + site(at_barrier.front()->file, at_barrier.front()->line));
  }
  bool one_site = true;
  for (const SimThread* t : at_barrier) {
    one_site = one_site && t->line == at_barrier.front()->line && t->file == at_barrier.front()->file;
  }
  if (!one_site) {
    std::map<std::string, std::pair<int, int32_t>> sites;  // site → (threads, first tid)
    for (const SimThread* t : at_barrier) {
      auto& e = sites.try_emplace(site(t->file, t->line), 0, t->tid).first->second;
      ++e.first;
    }
    std::string what;
    for (const auto& [where, e] : sites) {
      what += " " + std::to_string(e.first) + " at " + where + " (first " + thread_name(e.second) + ");";
    }
    if (sites.size() > 1) {
      kernel_fault("synccheck: threads of block " + xyz(b.block_idx) + " wait at different barriers:" + what);
    }
  }
  // The reductions of __syncthreads_count/and/or: arg carries the op, value the predicate.
  uint64_t count = 0;
  for (const SimThread* t : at_barrier) count += t->value != 0;
  ++b.barrier_epoch;
  for (SimThread* t : at_barrier) {
    t->result = t->arg == 0 ? count : t->arg == 1 ? count == at_barrier.size() : count > 0;
    t->state = State::kRunnable;
    b.ready.push_back(t->tid);
  }
  return true;
}

void run_block(Block& b, Launch& launch) {
  b.threads.assign(static_cast<size_t>(b.n), SimThread{});
  b.warp_epoch.assign(static_cast<size_t>((b.n + kWarpSize - 1) / kWarpSize), 0);
  b.warp_waiting.assign(b.warp_epoch.size(), 0);
  b.barrier_epoch = 0;
  b.ready.clear();
  b.abandoned = false;
  for (int32_t i = 0; i < b.n; ++i) {
    SimThread& t = b.threads[static_cast<size_t>(i)];
    t.tid = i;
    t.lane = i % kWarpSize;
    t.warp = i / kWarpSize;
    t.idx = uint3{i % b.block_dim.x, i / b.block_dim.x % b.block_dim.y, i / (b.block_dim.x * b.block_dim.y)};
    make_context(t.ctx, t_stacks->stack(i), StackPool::kStackBytes, fiber_entry);
    b.ready.push_back(i);
  }
  uint8_t* dyn = launch.dynamic_shared.data() + launch.dyn_offset;
  std::memset(dyn, 0xff, launch.dyn_bytes);
  shared_begin_block(reinterpret_cast<uintptr_t>(dyn), launch.dyn_bytes);
  for (;;) {
    while (!b.ready.empty() && !launch.aborted) {
      const int32_t i = b.ready.front();
      b.ready.pop_front();
      b.current = &b.threads[static_cast<size_t>(i)];
      g_accesses_since_wait = 0;
      g_in_kernel = true;
      switch_context(b.scheduler, b.current->ctx);
      g_in_kernel = false;
    }
    if (launch.aborted) return;
    if (!resolve(b)) break;
  }
}

// A kernel that touches an address no check could anticipate (a wild host pointer, a fiber's stack
// overflowing into its guard page) crashes the process; say which kernel and thread did it first.
void on_fatal_signal(int sig, siginfo_t* info, void*) {
  if (g_in_kernel && t_block != nullptr && t_block->current != nullptr) {
    const SimThread& t = *t_block->current;
    std::fprintf(stderr,
                 "quilt-cuda-sim: kernel %.*s: signal %d at address %p by thread (%u,%u,%u) of block "
                 "(%u,%u,%u)\n",
                 static_cast<int>(t_block->kernel.size()), t_block->kernel.data(), sig, info->si_addr,
                 t.idx.x, t.idx.y, t.idx.z, t_block->block_idx.x, t_block->block_idx.y,
                 t_block->block_idx.z);
  }
  std::signal(sig, SIG_DFL);  // returning re-runs the access, which now ends the process
}

void install_signal_handlers() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    return true;
  }();
  (void)installed;
  // An alternate signal stack per OS thread, so that a fiber's stack overflow can be reported.
  static thread_local std::vector<uint8_t> alt(64 * 1024);
  static thread_local bool alt_set = [] {
    stack_t ss{};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    sigaltstack(&ss, nullptr);
    return true;
  }();
  (void)alt_set;
}

}  // namespace

ThreadInfo current_thread_info() {
  const Block& b = *t_block;
  const SimThread& t = *b.current;
  return {t.tid, t.warp, b.barrier_epoch, b.warp_epoch[static_cast<size_t>(t.warp)]};
}

std::string thread_name(int32_t tid) {
  return "thread " + xyz(t_block->threads[static_cast<size_t>(tid)].idx);
}

std::string current_location() {
  return thread_name(t_block->current->tid) + " of block " + xyz(t_block->block_idx);
}

void fault_in_kernel(const std::string& what, bool fatal) {
  kernel_fault(what + " by " + current_location());
  if (fatal) {
    t_launch->aborted = true;
    yield_to_scheduler(*t_block->current);
  }
}

void* dynamic_shared_base() {
  if (t_launch == nullptr) return nullptr;
  return t_launch->dynamic_shared.data() + t_launch->dyn_offset;
}

void run_grid(std::string_view kernel, dim3 grid, dim3 block, size_t shared_bytes,
              const std::function<void()>& body) {
  static thread_local StackPool stacks;
  install_signal_handlers();
  Launch launch;
  // 16-byte aligned dynamic shared memory with room after it, so that an overrun is seen as such.
  launch.dynamic_shared.resize(shared_bytes + 64 + 16);
  const auto addr = reinterpret_cast<uintptr_t>(launch.dynamic_shared.data());
  launch.dyn_offset = (16 - addr % 16) % 16;
  launch.dyn_bytes = shared_bytes;
  Block b;
  b.kernel = kernel;
  b.body = &body;
  b.block_dim = block;
  b.grid_dim = grid;
  b.n = static_cast<int32_t>(block.x * block.y * block.z);
  Block* saved_block = t_block;
  Launch* saved_launch = t_launch;
  StackPool* saved_stacks = t_stacks;
  t_block = &b;
  t_launch = &launch;
  t_stacks = &stacks;
  for (unsigned z = 0; z < grid.z && !launch.aborted; ++z) {
    for (unsigned y = 0; y < grid.y && !launch.aborted; ++y) {
      for (unsigned x = 0; x < grid.x && !launch.aborted; ++x) {
        b.block_idx = uint3{x, y, z};
        run_block(b, launch);
      }
    }
  }
  t_block = saved_block;
  t_launch = saved_launch;
  t_stacks = saved_stacks;
}

// ---- device_api.h ------------------------------------------------------------------------------

const uint3& thread_index() { return t_block != nullptr ? t_block->current->idx : kZero3; }
const uint3& block_index() { return t_block != nullptr ? t_block->block_idx : kZero3; }
const dim3& block_dim() { return t_block != nullptr ? t_block->block_dim : kOne3; }
const dim3& grid_dim() { return t_block != nullptr ? t_block->grid_dim : kOne3; }

void sync_threads(const char* file, int line) { (void)sync_threads_reduce(0, 0, file, line); }

int sync_threads_reduce(int pred, int op, const char* file, int line) {
  SimThread& t = *t_block->current;
  t.state = State::kBarrier;
  t.file = file;
  t.line = line;
  t.value = pred != 0;
  t.arg = op;
  yield_to_scheduler(t);
  return static_cast<int>(t.result);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width,
                         const char* file, int line) {
  Block& b = *t_block;
  SimThread& t = *b.current;
  if ((mask >> t.lane & 1u) == 0) {
    kernel_fault("synccheck: warp collective at " + site(file, line) + ": the mask does not include the calling lane, " +
                 current_location());
    mask |= 1u << t.lane;
  }
  if (width <= 0 || width > kWarpSize || (width & (width - 1)) != 0) {
    kernel_fault("synccheck: warp shuffle at " + site(file, line) + ": width " + std::to_string(width) +
                 " is not a power of two ≤ 32, " + current_location());
    width = kWarpSize;
  }
  const int32_t lanes_here = std::min(kWarpSize, b.n - t.warp * kWarpSize);
  if (lanes_here < kWarpSize && (mask >> lanes_here) != 0) {
    kernel_fault("synccheck: warp collective at " + site(file, line) + ": the mask names lanes ≥ " +
                 std::to_string(lanes_here) + ", which this partial warp does not have, " + current_location());
    mask &= (1u << lanes_here) - 1;
  }
  t.state = State::kWarpOp;
  t.op = op;
  t.mask = mask;
  t.value = value;
  t.arg = arg;
  t.width = width;
  t.file = file;
  t.line = line;
  ++b.warp_waiting[static_cast<size_t>(t.warp)];
  if (!try_complete(b, t.warp, mask, t)) yield_to_scheduler(t);
  return t.result;
}

unsigned active_mask() {
  const Block& b = *t_block;
  const SimThread& t = *b.current;
  unsigned m = 0;
  for (int l = 0; l < kWarpSize; ++l) {
    const int32_t i = t.warp * kWarpSize + l;
    if (i < b.n && b.threads[static_cast<size_t>(i)].state != State::kExited) m |= 1u << l;
  }
  return m;
}

unsigned lane_id() { return static_cast<unsigned>(t_block->current->lane); }

long long clock_ticks() {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

}  // namespace quilt::sim
