// The simulator's runtime entry points that device code (through cuda_sim.h) calls: the running
// thread's coordinates, barriers, warp collectives and atomics. Implemented in block_runner.cc and
// atomics.cc, which are compiled without instrumentation. Callable only from a kernel body.
#pragma once

#include <vector_types.h>

#include <cstdint>

namespace quilt::sim {

const uint3& thread_index();
const uint3& block_index();
const dim3& block_dim();
const dim3& grid_dim();

// __syncthreads(): a barrier every live thread of the block must reach at the same call site.
void sync_threads(const char* file, int line);
// __syncthreads_count / _and / _or: the barrier, then the block-wide reduction of `pred`.
int sync_threads_reduce(int pred, int op, const char* file, int line);  // op: 0 count 1 and 2 or

enum class WarpOp : int32_t { kSync, kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll,
                              kReduceAdd, kReduceMin, kReduceMax, kMatchAny };
// One warp collective: every lane named in `mask` (which must include the caller) arrives with
// its `value` (raw bits, up to 8 bytes); returns the caller's result bits.
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width,
                         const char* file, int line);
unsigned active_mask();
unsigned lane_id();

enum class AtomicOp : int32_t { kAdd, kSub, kExch, kMin, kMax, kAnd, kOr, kXor, kCas, kInc, kDec };
enum class AtomicType : int32_t { kI32, kU32, kI64, kU64, kF32, kF64, kF16, kBF16, kF16x2, kBF16x2 };
// An atomic read-modify-write at p: memory-checked, never counted as a race. Operands and the
// returned old value are raw bits. kCas stores operand when the old value equals compare; kInc
// and kDec wrap at operand as CUDA's atomicInc/atomicDec do.
uint64_t atomic(void* p, AtomicOp op, AtomicType type, uint64_t operand, uint64_t compare);

long long clock_ticks();

}  // namespace quilt::sim
