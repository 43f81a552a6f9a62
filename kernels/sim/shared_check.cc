// racecheck / initcheck over shared memory, one shadow cell per byte, reset per block by a
// generation number instead of clearing.
#include "kernels/sim/shared_check.h"

#include <link.h>

#include <cstdio>
#include <string>
#include <vector>

#include "kernels/sim/block_runner.h"

namespace quilt::sim {

thread_local SharedRanges g_shared_ranges;

namespace {

constexpr int16_t kNobody = -1;

struct Cell {
  uint32_t gen = 0;          // block generation of the fields below; stale: never written
  int16_t writer = kNobody;  // tid of the last write
  int16_t reader = kNobody;  // tid of the first read since that write (in the current epoch)
  bool several = false;      // more than one thread has read it since
  uint32_t w_bar = 0, w_warp = 0;
  uint32_t r_bar = 0, r_warp = 0;
  int16_t w_warp_id = 0, r_warp_id = 0;
};

struct Region {
  uintptr_t lo = 0, hi = 0;
  std::vector<Cell> cells;
  const char* name = "";
};

struct State {
  Region tls, dyn;
  uint32_t gen = 0;
  bool tls_known = false;
};
thread_local State t_state;

// Static shared memory: __shared__ is `static thread_local` in the simulator, so those variables
// live in the executable's TLS block of the OS thread running the block. dl_iterate_phdr gives its
// address for the calling thread (module 1 is the executable).
int find_tls(dl_phdr_info* info, size_t, void* out) {
  if (info->dlpi_tls_modid != 1 || info->dlpi_tls_data == nullptr) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_TLS) {
      auto* r = static_cast<Region*>(out);
      r->lo = reinterpret_cast<uintptr_t>(info->dlpi_tls_data);
      r->hi = r->lo + info->dlpi_phdr[i].p_memsz;
      return 1;
    }
  }
  return 0;
}

bool same_epoch(uint32_t bar, uint32_t warp_epoch, int16_t warp_id, const ThreadInfo& me) {
  if (bar != me.barrier_epoch) return false;                      // a __syncthreads since
  if (warp_id == me.warp && warp_epoch != me.warp_epoch) return false;  // a warp collective since
  return true;
}

std::string hex(uintptr_t p) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(p));
  return b;
}

void hazard(const Region& r, uintptr_t p, const char* kind, int16_t other, bool write) {
  const std::string who = other == kNobody ? std::string("other threads") : thread_name(other);
  fault_in_kernel(std::string("racecheck: ") + kind + " hazard on " + r.name + " shared memory at " +
                      hex(p) + " (byte " + std::to_string(p - r.lo) + "): " + who +
                      " accessed it and no barrier separates that from this " +
                      (write ? "write" : "read"),
                  false);
}

}  // namespace

void shared_begin_block(uintptr_t dyn, size_t dyn_bytes) {
  State& s = t_state;
  if (!s.tls_known) {
    dl_iterate_phdr(find_tls, &s.tls);
    s.tls.cells.assign(s.tls.hi - s.tls.lo, Cell{});
    s.tls.name = "static";
    s.tls_known = true;
  }
  ++s.gen;
  s.dyn.lo = dyn;
  s.dyn.hi = dyn + dyn_bytes;
  s.dyn.name = "dynamic";
  if (s.dyn.cells.size() < dyn_bytes) s.dyn.cells.resize(dyn_bytes);
  g_shared_ranges = {s.tls.lo, s.tls.hi, s.dyn.lo, s.dyn.hi + 64};
}

bool shared_access(uintptr_t p, size_t n, bool write, bool atomic) {
  State& s = t_state;
  Region* r = nullptr;
  if (p >= s.tls.lo && p < s.tls.hi) {
    r = &s.tls;
  } else if (p >= s.dyn.lo && p < s.dyn.hi + 64) {
    r = &s.dyn;
    if (p + n > s.dyn.hi) {
      fault_in_kernel("memcheck: invalid __shared__ " + std::string(write ? "write" : "read") + " of " +
                          std::to_string(n) + " bytes at " + hex(p) + ": past the end of the " +
                          std::to_string(s.dyn.hi - s.dyn.lo) + " bytes of dynamic shared memory",
                      false);
      return true;
    }
  } else {
    return false;
  }
  const ThreadInfo me = current_thread_info();
  bool reported = false;
  for (size_t i = 0; i < n && p + i < r->hi; ++i) {
    Cell& c = r->cells[p + i - r->lo];
    if (c.gen != s.gen) {
      if (!write && !atomic) {
        if (!reported) {
          fault_in_kernel("initcheck: read of uninitialised " + std::string(r->name) +
                              " shared memory at " + hex(p + i) + " (byte " + std::to_string(p + i - r->lo) +
                              ": no thread of this block has written it)",
                          false);
        }
        return true;
      }
      c = Cell{};
      c.gen = s.gen;
    }
    if (!reported && !atomic) {
      if (c.writer >= 0 && c.writer != me.tid && same_epoch(c.w_bar, c.w_warp, c.w_warp_id, me)) {
        hazard(*r, p + i, write ? "write-after-write" : "read-after-write", c.writer, write);
        reported = true;
      } else if (write && c.reader != kNobody && (c.reader != me.tid || c.several) &&
                 same_epoch(c.r_bar, c.r_warp, c.r_warp_id, me)) {
        hazard(*r, p + i, "write-after-read", c.reader != me.tid ? c.reader : kNobody, write);
        reported = true;
      }
    }
    if (write || atomic) {
      c.writer = atomic ? kNobody : static_cast<int16_t>(me.tid);
      c.w_bar = me.barrier_epoch;
      c.w_warp = me.warp_epoch;
      c.w_warp_id = static_cast<int16_t>(me.warp);
      c.reader = kNobody;
      c.several = false;
    } else {
      const bool fresh = c.reader == kNobody || !same_epoch(c.r_bar, c.r_warp, c.r_warp_id, me);
      if (fresh) {
        c.reader = static_cast<int16_t>(me.tid);
        c.several = false;
      } else if (c.reader != me.tid) {
        c.several = true;
      }
      c.r_bar = me.barrier_epoch;
      c.r_warp = me.warp_epoch;
      c.r_warp_id = static_cast<int16_t>(me.warp);
    }
  }
  return true;
}

}  // namespace quilt::sim
