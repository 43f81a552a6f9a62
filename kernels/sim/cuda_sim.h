// Force-included (-include) into every .cu file compiled for the CUDA simulator: what nvcc gives
// device code, as host C++. The toolkit's own headers supply the types (vector types, __half,
// __nv_bfloat16 and their host-side math); this file adds the thread coordinates, barriers, warp
// collectives, atomics and intrinsics, routed to the simulator's runtime (device_api.h).
//
// __shared__ variables become `static thread_local`: the threads of a block are fibers on one OS
// thread, so they share them, and blocks run one after another. Dynamic shared memory comes from
// kernels::dynamic_shared<T>() (kernels/common/launch.h), never `extern __shared__`.
#pragma once

#ifndef QUILT_CUDA_SIM
#define QUILT_CUDA_SIM 1
#endif

#define __shared__ static thread_local

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/sim/device_api.h"

#undef __grid_constant__
#define __grid_constant__
#define __launch_bounds__(...)

#define threadIdx (::quilt::sim::thread_index())
#define blockIdx (::quilt::sim::block_index())
#define blockDim (::quilt::sim::block_dim())
#define gridDim (::quilt::sim::grid_dim())
inline constexpr int warpSize = 32;

// ---- barriers ----------------------------------------------------------------------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::quilt::sim::sync_threads(file, line);
}
inline int __syncthreads_count(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::quilt::sim::sync_threads_reduce(p, 0, file, line);
}
inline int __syncthreads_and(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::quilt::sim::sync_threads_reduce(p, 1, file, line);
}
inline int __syncthreads_or(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::quilt::sim::sync_threads_reduce(p, 2, file, line);
}
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
inline void __nanosleep(unsigned) {}
inline long long clock64() { return ::quilt::sim::clock_ticks(); }

// ---- warp collectives --------------------------------------------------------------------------
namespace quilt::sim::detail {
template <typename T>
uint64_t bits(T v) {
  static_assert(sizeof(T) <= 8, "shuffles move up to 8 bytes");  // __half2 is not trivially copyable
  uint64_t b = 0;
  std::memcpy(&b, static_cast<const void*>(&v), sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(static_cast<void*>(&v), &b, sizeof(T));
  return v;
}
template <typename T>
T shfl(WarpOp op, unsigned mask, T v, int arg, int width, const char* f, int l) {
  return from_bits<T>(warp_collective(op, mask, bits(v), arg, width, f, l));
}
}  // namespace quilt::sim::detail

inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
  ::quilt::sim::warp_collective(::quilt::sim::WarpOp::kSync, mask, 0, 0, 32, file, line);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32, const char* file = __builtin_FILE(),
              int line = __builtin_LINE()) {
  return ::quilt::sim::detail::shfl(::quilt::sim::WarpOp::kShflIdx, mask, v, src, width, file, line);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                 const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::quilt::sim::detail::shfl(::quilt::sim::WarpOp::kShflUp, mask, v, static_cast<int>(delta),
                                    width, file, line);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                   const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::quilt::sim::detail::shfl(::quilt::sim::WarpOp::kShflDown, mask, v,
                                    static_cast<int>(delta), width, file, line);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                  const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::quilt::sim::detail::shfl(::quilt::sim::WarpOp::kShflXor, mask, v, lane_mask, width, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return static_cast<unsigned>(::quilt::sim::warp_collective(::quilt::sim::WarpOp::kBallot, mask,
                                                              pred != 0, 0, 32, file, line));
}
inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return static_cast<int>(::quilt::sim::warp_collective(::quilt::sim::WarpOp::kAny, mask, pred != 0, 0, 32, file, line));
}
inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return static_cast<int>(::quilt::sim::warp_collective(::quilt::sim::WarpOp::kAll, mask, pred != 0, 0, 32, file, line));
}
#define QUILT_SIM_REDUCE(name, op, T, is_signed)                                                  \
  inline T name(unsigned mask, T v, const char* file = __builtin_FILE(), int line = __builtin_LINE()) { \
    return static_cast<T>(::quilt::sim::warp_collective(::quilt::sim::WarpOp::op, mask,         \
                                                        static_cast<uint32_t>(v), is_signed, 32, file, line)); \
  }
QUILT_SIM_REDUCE(__reduce_add_sync, kReduceAdd, unsigned, 0)
QUILT_SIM_REDUCE(__reduce_add_sync, kReduceAdd, int, 1)
QUILT_SIM_REDUCE(__reduce_min_sync, kReduceMin, unsigned, 0)
QUILT_SIM_REDUCE(__reduce_min_sync, kReduceMin, int, 1)
QUILT_SIM_REDUCE(__reduce_max_sync, kReduceMax, unsigned, 0)
QUILT_SIM_REDUCE(__reduce_max_sync, kReduceMax, int, 1)
#undef QUILT_SIM_REDUCE
template <typename T>
unsigned __match_any_sync(unsigned mask, T v, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return static_cast<unsigned>(::quilt::sim::warp_collective(::quilt::sim::WarpOp::kMatchAny, mask,
                                                              ::quilt::sim::detail::bits(v), 0, 32, file, line));
}
inline unsigned __activemask() { return ::quilt::sim::active_mask(); }
// The PTX lane-mask registers (%lanemask_lt and friends), as functions.
inline unsigned __lanemask_eq() { return 1u << ::quilt::sim::lane_id(); }
inline unsigned __lanemask_lt() { return (1u << ::quilt::sim::lane_id()) - 1u; }
inline unsigned __lanemask_le() { return (2u << ::quilt::sim::lane_id()) - 1u; }
inline unsigned __lanemask_gt() { return ~__lanemask_le(); }
inline unsigned __lanemask_ge() { return ~__lanemask_lt(); }

// ---- loads with cache hints: plain loads here (still checked by memcheck) --------------------
template <typename T>
T __ldg(const T* p) { return *p; }
template <typename T>
T __ldcg(const T* p) { return *p; }
template <typename T>
T __ldca(const T* p) { return *p; }
template <typename T>
T __ldcs(const T* p) { return *p; }
template <typename T>
T __ldlu(const T* p) { return *p; }
template <typename T>
T __ldcv(const T* p) { return *p; }
template <typename T>
void __stcg(T* p, T v) { *p = v; }
template <typename T>
void __stcs(T* p, T v) { *p = v; }
template <typename T>
void __stwb(T* p, T v) { *p = v; }
template <typename T>
void __stwt(T* p, T v) { *p = v; }

// ---- atomics -----------------------------------------------------------------------------------
namespace quilt::sim::detail {
template <typename T> constexpr AtomicType atomic_type();
template <> constexpr AtomicType atomic_type<int>() { return AtomicType::kI32; }
template <> constexpr AtomicType atomic_type<unsigned>() { return AtomicType::kU32; }
template <> constexpr AtomicType atomic_type<long long>() { return AtomicType::kI64; }
template <> constexpr AtomicType atomic_type<unsigned long long>() { return AtomicType::kU64; }
template <> constexpr AtomicType atomic_type<float>() { return AtomicType::kF32; }
template <> constexpr AtomicType atomic_type<double>() { return AtomicType::kF64; }
template <> constexpr AtomicType atomic_type<__half>() { return AtomicType::kF16; }
template <> constexpr AtomicType atomic_type<__nv_bfloat16>() { return AtomicType::kBF16; }
template <> constexpr AtomicType atomic_type<__half2>() { return AtomicType::kF16x2; }
template <> constexpr AtomicType atomic_type<__nv_bfloat162>() { return AtomicType::kBF16x2; }
template <typename T>
T atomic(T* p, AtomicOp op, T v, T cmp = T{}) {
  return from_bits<T>(::quilt::sim::atomic(p, op, atomic_type<T>(), bits(v), bits(cmp)));
}
}  // namespace quilt::sim::detail

#define QUILT_SIM_ATOMIC(name, op, T)                                                      \
  inline T name(T* p, T v) { return ::quilt::sim::detail::atomic(p, ::quilt::sim::AtomicOp::op, v); } \
  inline T name##_block(T* p, T v) { return name(p, v); }                                  \
  inline T name##_system(T* p, T v) { return name(p, v); }
#define QUILT_SIM_ATOMIC_INTS(name, op)              \
  QUILT_SIM_ATOMIC(name, op, int)                    \
  QUILT_SIM_ATOMIC(name, op, unsigned)               \
  QUILT_SIM_ATOMIC(name, op, unsigned long long)
QUILT_SIM_ATOMIC_INTS(atomicAdd, kAdd)
QUILT_SIM_ATOMIC(atomicAdd, kAdd, float)
QUILT_SIM_ATOMIC(atomicAdd, kAdd, double)
QUILT_SIM_ATOMIC(atomicAdd, kAdd, __half)
QUILT_SIM_ATOMIC(atomicAdd, kAdd, __nv_bfloat16)
QUILT_SIM_ATOMIC(atomicAdd, kAdd, __half2)
QUILT_SIM_ATOMIC(atomicAdd, kAdd, __nv_bfloat162)
QUILT_SIM_ATOMIC(atomicSub, kSub, int)
QUILT_SIM_ATOMIC(atomicSub, kSub, unsigned)
QUILT_SIM_ATOMIC_INTS(atomicExch, kExch)
QUILT_SIM_ATOMIC(atomicExch, kExch, float)
QUILT_SIM_ATOMIC_INTS(atomicMin, kMin)
QUILT_SIM_ATOMIC(atomicMin, kMin, long long)
QUILT_SIM_ATOMIC_INTS(atomicMax, kMax)
QUILT_SIM_ATOMIC(atomicMax, kMax, long long)
QUILT_SIM_ATOMIC_INTS(atomicAnd, kAnd)
QUILT_SIM_ATOMIC_INTS(atomicOr, kOr)
QUILT_SIM_ATOMIC_INTS(atomicXor, kXor)
QUILT_SIM_ATOMIC(atomicInc, kInc, unsigned)
QUILT_SIM_ATOMIC(atomicDec, kDec, unsigned)
#undef QUILT_SIM_ATOMIC_INTS
#undef QUILT_SIM_ATOMIC
#define QUILT_SIM_CAS(T)                                                                       \
  inline T atomicCAS(T* p, T cmp, T v) {                                                       \
    return ::quilt::sim::detail::atomic(p, ::quilt::sim::AtomicOp::kCas, v, cmp);              \
  }                                                                                            \
  inline T atomicCAS_block(T* p, T cmp, T v) { return atomicCAS(p, cmp, v); }
QUILT_SIM_CAS(int)
QUILT_SIM_CAS(unsigned)
QUILT_SIM_CAS(unsigned long long)
#undef QUILT_SIM_CAS

// ---- integer and float intrinsics --------------------------------------------------------------
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __tanf(float x) { return tanf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : (x == x ? x : 0.f); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }

// Packed 16-bit fused multiply-add, which the toolkit declares for device code only.
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  const float2 fa = __half22float2(a), fb = __half22float2(b), fc = __half22float2(c);
  return __floats2half2_rn(fmaf(fa.x, fb.x, fc.x), fmaf(fa.y, fb.y, fc.y));
}
inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c) {
  const float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b), fc = __bfloat1622float2(c);
  return __floats2bfloat162_rn(fmaf(fa.x, fb.x, fc.x), fmaf(fa.y, fb.y, fc.y));
}
inline __half __hfma(__half a, __half b, __half c) {
  return __float2half_rn(fmaf(__half2float(a), __half2float(b), __half2float(c)));
}
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __float2bfloat16_rn(fmaf(__bfloat162float(a), __bfloat162float(b), __bfloat162float(c)));
}
