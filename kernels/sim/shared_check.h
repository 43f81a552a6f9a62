// racecheck and initcheck for shared memory: each byte remembers the last thread that wrote it and
// the last that read it, with the barrier and warp epochs they did it in. An access by another
// thread in the same epoch (no __syncthreads, or for lanes of one warp no warp collective, since)
// where either side writes is a hazard; a read of a byte no thread of this block has written is
// an uninitialised read. Private to kernels/sim/; used from the block's OS thread only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quilt::sim {

// A new block starts: static shared memory is this OS thread's TLS block of the executable (where
// __shared__ variables live in the simulator), dynamic shared memory is [dyn, dyn + dyn_bytes).
void shared_begin_block(uintptr_t dyn, size_t dyn_bytes);

// Where the running block's shared memory is (static, and dynamic with room past its end for
// overruns to be reported), for the hooks' quick test before shared_access.
struct SharedRanges {
  uintptr_t static_lo = 0, static_hi = 0, dynamic_lo = 0, dynamic_hi = 0;
  bool contains(uintptr_t p) const {
    return (p >= static_lo && p < static_hi) || (p >= dynamic_lo && p < dynamic_hi);
  }
};
extern thread_local SharedRanges g_shared_ranges;

// Checks an access by the running thread; false when p is not shared memory at all.
bool shared_access(uintptr_t p, size_t n, bool write, bool atomic);

}  // namespace quilt::sim
