// Pieces shared by the shrink and expand kernels: token runs, paged-row addressing, typed vector
// loads, and the host-side checks of the arguments. Private to kernels/sgmv/.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "kernels/sgmv/sgmv_cuda.h"

namespace quilt::kernels::sgmv::detail {

inline constexpr int kWarpSize = 32;
// 8 elements of a 2-byte type: one 16-byte load per thread, the widest single access.
inline constexpr int kVecElems = 8;

// ---- host side ---------------------------------------------------------------------------------

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The device code indexes rows and pages with 32-bit integers (cheaper address math); everything
// that feeds those must fit, with kSlack to spare for an index that steps one tile past the end.
inline bool fits_i32(int64_t v) { return v >= 0 && v <= std::numeric_limits<int32_t>::max(); }
inline constexpr int64_t kSlack = 4096;

template <typename T>
bool weights_ok(const PagedLoraWeights<T>& w) {
  return w.pool != nullptr && w.page_indices != nullptr && w.modules != nullptr &&
         w.page_elems >= 1 && fits_i32(w.page_elems + kSlack) && w.num_layers >= 1 &&
         w.num_projs >= 1;
}

inline bool batch_ok(const LoraBatch& b) {
  if (b.num_tokens < 0 || b.max_rank < 0 || b.num_segments < 0) return false;
  if (b.num_segments > 0) return b.segment_starts != nullptr && b.segment_slots != nullptr;
  return b.token_slots != nullptr;
}

inline bool use_token_tile(const LoraBatch& b, TokenTiling tiling) {
  switch (tiling) {
    case TokenTiling::kPerToken:
      return false;
    case TokenTiling::kTokenTile:
      return true;
    case TokenTiling::kAuto:
      break;
  }
  return b.num_segments > 0 &&
         b.num_tokens >= static_cast<int64_t>(kAutoTileMinSegmentLen) * b.num_segments;
}

// ---- device side -------------------------------------------------------------------------------

// A maximal run [t, end) of tokens inside one block's tile that share `slot` (-1: no adapter).
struct TokenRun {
  int32_t end;
  int32_t slot;
};

// Every thread of a block calls this with the same arguments and gets the same answer, which keeps
// the control flow around it block-uniform (the expand kernel has barriers inside the run loop).
// SGMV: the segment holding t by binary search over segment_starts (non-decreasing; empty segments
// allowed); tokens outside [starts[0], starts[num_segments]) have no adapter, as in shrink_cpu.
// BGMV: consecutive tokens with equal token_slots form one run, so a decode batch sorted by adapter
// also reuses weights within a tile.
__device__ __forceinline__ TokenRun find_run(const LoraBatch& b, int32_t t, int32_t t_end) {
  if (b.num_segments > 0) {
    const int32_t* starts = b.segment_starts;
    // First index in [0, num_segments] whose start is > t; the segment before it holds t.
    int32_t lo = 0, hi = b.num_segments + 1;
    while (lo < hi) {
      const int32_t mid = (lo + hi) >> 1;
      if (__ldg(starts + mid) <= t)
        lo = mid + 1;
      else
        hi = mid;
    }
    const int32_t s = lo - 1;
    if (s < 0) return {min(__ldg(starts), t_end), -1};
    if (s >= b.num_segments) return {t_end, -1};
    return {min(__ldg(starts + s + 1), t_end), __ldg(b.segment_slots + s)};
  }
  const int32_t slot = __ldg(b.token_slots + t);
  int32_t end = t + 1;
  while (end < t_end && __ldg(b.token_slots + end) == slot) ++end;
  return {end, slot};
}

template <typename T>
__device__ __forceinline__ LoraModuleRef load_module(const PagedLoraWeights<T>& w, int32_t slot,
                                                     int32_t layer, int32_t proj) {
  const int64_t i = (static_cast<int64_t>(slot) * w.num_layers + layer) * w.num_projs + proj;
  return w.modules[i];
}

template <typename T>
struct Vec2;
template <>
struct Vec2<__nv_bfloat16> {
  using type = __nv_bfloat162;
};
template <>
struct Vec2<__half> {
  using type = __half2;
};

__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float2 to_float2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 to_float2(__half2 v) { return __half22float2(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float(float v) {
  return __float2half_rn(v);
}

template <typename T>
__device__ __forceinline__ typename Vec2<T>::type pack2(float a, float b);
template <>
__device__ __forceinline__ __nv_bfloat162 pack2<__nv_bfloat16>(float a, float b) {
  return __floats2bfloat162_rn(a, b);
}
template <>
__device__ __forceinline__ __half2 pack2<__half>(float a, float b) {
  return __floats2half2_rn(a, b);
}

// Reads kVec elements of read-only data at p (16-byte aligned when kVec == 8) as floats.
template <int kVec, typename T>
__device__ __forceinline__ void load_ro(const T* p, float (&out)[kVec]) {
  if constexpr (kVec == kVecElems) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
    const auto* h = reinterpret_cast<const typename Vec2<T>::type*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {
      const float2 f = to_float2(h[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) out[i] = to_float(p[i]);
  }
}

// y[0..kVec) += acc, in float, rounded once to T. y is read and written by this thread only.
template <int kVec, typename T>
__device__ __forceinline__ void add_store(T* y, const float (&acc)[kVec]) {
  if constexpr (kVec == kVecElems) {
    uint4 raw = *reinterpret_cast<const uint4*>(y);
    auto* h = reinterpret_cast<typename Vec2<T>::type*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {
      const float2 f = to_float2(h[i]);
      h[i] = pack2<T>(f.x + acc[2 * i], f.y + acc[2 * i + 1]);
    }
    *reinterpret_cast<uint4*>(y) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) y[i] = from_float<T>(to_float(y[i]) + acc[i]);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace quilt::kernels::sgmv::detail
