// memcheck for device code. Kernel sources are compiled with GCC's -fsanitize=thread
// instrumentation but linked without its runtime: every load and store then calls one of the
// __tsan_* entry points below, which the simulator implements. Accesses into the simulated device
// memory must be addressable (live, in bounds); shared memory goes to racecheck/initcheck; a null
// or near-null address ends the launch (the access would crash the process). Outside a kernel
// (the host code in the same files) nothing is checked.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/sim/block_runner.h"
#include "kernels/sim/device_api.h"
#include "kernels/sim/device_memory.h"
#include "kernels/sim/shared_check.h"
#include "kernels/sim/sim_state.h"

namespace quilt::sim {
namespace {

void check_access(const void* addr, size_t n, bool write, bool atomic) {
  const auto p = reinterpret_cast<uintptr_t>(addr);
  const char* what = atomic ? "atomic" : write ? "write" : "read";
  if (in_device_range(p)) {
    if (!addressable(p, n)) {
      fault_in_kernel("memcheck: invalid __global__ " + std::string(what) + " of " + std::to_string(n) +
                          " bytes at " + describe_address(p),
                      false);
    }
    return;
  }
  if (g_shared_ranges.contains(p)) {
    shared_access(p, n, write, atomic);
    return;
  }
  if (p < 65536) {
    fault_in_kernel("memcheck: invalid " + std::string(what) + " of " + std::to_string(n) + " bytes at " +
                        describe_address(p),
                    true);
  }
}

constexpr uint64_t kSpinLimit = uint64_t{1} << 30;  // about five seconds of one thread's accesses

inline void hook(const void* p, size_t n, bool write) {
  if (__builtin_expect(g_in_kernel, 0)) {
    check_access(p, n, write, false);
    if (++g_accesses_since_wait > kSpinLimit) {
      fault_in_kernel("synccheck: 2^30 memory accesses without reaching a barrier or warp collective: "
                      "a spin-wait on another block? (blocks run one at a time in the simulator)",
                      true);
    }
  }
}

template <typename T>
T apply(AtomicOp op, T old, T v, T cmp) {
  switch (op) {
    case AtomicOp::kAdd: return static_cast<T>(old + v);
    case AtomicOp::kSub: return static_cast<T>(old - v);
    case AtomicOp::kExch: return v;
    case AtomicOp::kMin: return v < old ? v : old;
    case AtomicOp::kMax: return v > old ? v : old;
    case AtomicOp::kCas: return old == cmp ? v : old;
    default: break;
  }
  if constexpr (std::is_integral_v<T>) {
    switch (op) {
      case AtomicOp::kAnd: return old & v;
      case AtomicOp::kOr: return old | v;
      case AtomicOp::kXor: return old ^ v;
      case AtomicOp::kInc: return old >= v ? 0 : static_cast<T>(old + 1);
      case AtomicOp::kDec: return (old == 0 || old > v) ? v : static_cast<T>(old - 1);
      default: break;
    }
  }
  return old;
}

template <typename T>
uint64_t rmw(void* p, AtomicOp op, uint64_t operand, uint64_t compare) {
  T old, v, cmp;
  std::memcpy(&old, p, sizeof(T));
  std::memcpy(&v, &operand, sizeof(T));
  std::memcpy(&cmp, &compare, sizeof(T));
  const T nv = apply<T>(op, old, v, cmp);
  std::memcpy(p, &nv, sizeof(T));
  uint64_t out = 0;
  std::memcpy(&out, &old, sizeof(T));
  return out;
}

// 16-bit floats through float: bf16 is the top half of a float32; fp16 converted by the compiler.
float half_to_float(uint16_t h) { _Float16 f; std::memcpy(&f, &h, 2); return static_cast<float>(f); }
uint16_t float_to_half(float v) { _Float16 f = static_cast<_Float16>(v); uint16_t h; std::memcpy(&h, &f, 2); return h; }
float bf16_to_float(uint16_t b) { uint32_t u = uint32_t{b} << 16; float f; std::memcpy(&f, &u, 4); return f; }
uint16_t float_to_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

uint16_t add16(uint16_t old, uint16_t v, bool bf16) {
  return bf16 ? float_to_bf16(bf16_to_float(old) + bf16_to_float(v))
              : float_to_half(half_to_float(old) + half_to_float(v));
}

}  // namespace

uint64_t atomic(void* p, AtomicOp op, AtomicType type, uint64_t operand, uint64_t compare) {
  static const int kBytes[] = {4, 4, 8, 8, 4, 8, 2, 2, 4, 4};
  const int bytes = kBytes[static_cast<int>(type)];
  check_access(p, static_cast<size_t>(bytes), true, true);
  switch (type) {
    case AtomicType::kI32: return rmw<int32_t>(p, op, operand, compare);
    case AtomicType::kU32: return rmw<uint32_t>(p, op, operand, compare);
    case AtomicType::kI64: return rmw<int64_t>(p, op, operand, compare);
    case AtomicType::kU64: return rmw<uint64_t>(p, op, operand, compare);
    case AtomicType::kF32: return rmw<float>(p, op, operand, compare);
    case AtomicType::kF64: return rmw<double>(p, op, operand, compare);
    case AtomicType::kF16:
    case AtomicType::kBF16: {  // atomicAdd only
      uint16_t old;
      std::memcpy(&old, p, 2);
      const uint16_t nv = add16(old, static_cast<uint16_t>(operand), type == AtomicType::kBF16);
      std::memcpy(p, &nv, 2);
      return old;
    }
    case AtomicType::kF16x2:
    case AtomicType::kBF16x2: {
      uint16_t old[2];
      std::memcpy(old, p, 4);
      const bool bf = type == AtomicType::kBF16x2;
      const uint16_t nv[2] = {add16(old[0], static_cast<uint16_t>(operand), bf),
                              add16(old[1], static_cast<uint16_t>(operand >> 16), bf)};
      std::memcpy(p, nv, 4);
      return uint64_t{old[0]} | uint64_t{old[1]} << 16;
    }
  }
  return 0;
}

}  // namespace quilt::sim

// ---- the instrumentation ABI (GCC/Clang -fsanitize=thread) -----------------------------------
using quilt::sim::hook;

extern "C" {
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
void __tsan_ignore_thread_begin() {}
void __tsan_ignore_thread_end() {}

#define QUILT_SIM_HOOKS(N)                                                      \
  void __tsan_read##N(void* p) { hook(p, N, false); }                           \
  void __tsan_write##N(void* p) { hook(p, N, true); }                           \
  void __tsan_unaligned_read##N(void* p) { hook(p, N, false); }                 \
  void __tsan_unaligned_write##N(void* p) { hook(p, N, true); }                 \
  void __tsan_volatile_read##N(void* p) { hook(p, N, false); }                  \
  void __tsan_volatile_write##N(void* p) { hook(p, N, true); }                  \
  void __tsan_unaligned_volatile_read##N(void* p) { hook(p, N, false); }        \
  void __tsan_unaligned_volatile_write##N(void* p) { hook(p, N, true); }        \
  void __tsan_read##N##_pc(void* p, void*) { hook(p, N, false); }               \
  void __tsan_write##N##_pc(void* p, void*) { hook(p, N, true); }
QUILT_SIM_HOOKS(1)
QUILT_SIM_HOOKS(2)
QUILT_SIM_HOOKS(4)
QUILT_SIM_HOOKS(8)
QUILT_SIM_HOOKS(16)
#undef QUILT_SIM_HOOKS

void __tsan_read_range(void* p, unsigned long n) { hook(p, n, false); }
void __tsan_write_range(void* p, unsigned long n) { hook(p, n, true); }
}
