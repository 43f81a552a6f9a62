// Pieces shared by the shrink and expand kernels: the per-segment tile list, flat paged addressing,
// typed vector loads, and the host-side checks of the arguments. Private to kernels/sgmv/.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/sgmv/sgmv_cuda.h"

namespace quilt::kernels::sgmv::detail {

inline constexpr int kWarpSize = 32;
inline constexpr unsigned kFullMask = 0xffffffffu;
// Both kernels run blocks of 4 warps: enough to hide latency, small enough that a decode batch of
// one token still makes many blocks.
inline constexpr int kWarps = 4;
inline constexpr int kThreads = kWarps * kWarpSize;
// 8 elements of a 2-byte type: one 16-byte load per thread, the widest single access.
inline constexpr int kVecElems = 8;
inline constexpr int kTile = kTensorCoreTokens;  // tokens per tile (WMMA's M)
inline constexpr int kFrag = 16;                 // WMMA's N and K

// ---- host side ---------------------------------------------------------------------------------

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The device code indexes flat matrix elements and pages with 32-bit integers (cheaper address
// math); everything that feeds those must fit, with kSlack to spare for a cursor that steps one
// stride past the end.
inline bool fits_i32(int64_t v) { return v >= 0 && v <= std::numeric_limits<int32_t>::max(); }
inline constexpr int64_t kSlack = 1 << 16;

template <typename T>
bool weights_ok(const PagedLoraWeights<T>& w) {
  return w.pool != nullptr && w.page_indices != nullptr && w.modules != nullptr &&
         w.page_elems >= 1 && fits_i32(w.page_elems + kSlack) && w.num_layers >= 1 &&
         w.num_projs >= 1;
}

inline bool batch_ok(const LoraBatch& b) {
  if (b.num_tokens < 0 || b.max_rank < 0 || b.num_segments < 0) return false;
  if (b.num_tokens == 0) return true;  // nothing is read: an empty step may pass null tables
  if (b.num_segments > 0) return b.segment_starts != nullptr && b.segment_slots != nullptr;
  return b.token_slots != nullptr;
}

// A matrix of max_rank rows of `dim` is indexed flat in 32 bits.
inline bool flat_fits(int64_t max_rank, int64_t dim) { return fits_i32(max_rank * dim + kSlack); }

// grid.x: an upper bound of the tile count Σ_s ceil(len_s / kTile) that the device computes from
// segment_starts (each segment has at most one partial tile, and no tile is empty). Blocks past
// the real count leave at once.
inline int64_t max_tiles(const LoraBatch& b) {
  if (b.num_segments == 0) return b.num_tokens;
  return std::min<int64_t>(b.num_tokens, b.num_segments + b.num_tokens / kTile);
}

// ---- device side: the tile list ----------------------------------------------------------------

// One block's tokens [t0, t0 + n), all with adapter `slot` (-1: none). n == 0: no tile (the block
// lies past the end of the list). tensor: run it on tensor cores.
struct Tile {
  int32_t t0;
  int32_t n;
  int32_t slot;
  bool tensor;
};

__device__ __forceinline__ int32_t tiles_of(int32_t len) { return (len + kTile - 1) / kTile; }

__device__ __forceinline__ int32_t warp_sum_i32(int32_t v) {
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Tile number `item` of the batch. Every warp of a block computes it on its own, with the same
// answer, so no shared memory and no barrier are needed and the control flow that depends on it
// is block-uniform. Call with whole warps only.
// SGMV: lanes each count the tiles of a contiguous range of segments (loads issued back to back),
// a warp scan finds the lane whose range holds `item`, that lane walks its range again, and a warp
// sum (only that lane contributes) hands its answer to every lane.
// BGMV: tile `item` is token `item`.
__device__ __forceinline__ Tile find_tile(const LoraBatch& b, int32_t item, LoraPath path) {
  int32_t seg_len = 1;
  Tile tile{0, 0, -1, false};
  if (b.num_segments > 0) {
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int32_t* starts = b.segment_starts;
    const int32_t per_lane = (b.num_segments + kWarpSize - 1) / kWarpSize;
    const int32_t s_begin = min(lane * per_lane, b.num_segments);
    const int32_t s_end = min(s_begin + per_lane, b.num_segments);
    int32_t mine = 0;
    for (int32_t s = s_begin; s < s_end; ++s) {
      mine += tiles_of(__ldg(starts + s + 1) - __ldg(starts + s));
    }
    int32_t incl = mine;
#pragma unroll
    for (int o = 1; o < kWarpSize; o <<= 1) {
      const int32_t up = __shfl_up_sync(kFullMask, incl, o);
      if (lane >= o) incl += up;
    }
    int32_t t0 = 0, n = 0, slot1 = 0, len = 0;  // slot + 1, so that "not mine" sums to nothing
    if (incl - mine <= item && item < incl) {
      int32_t cum = incl - mine;
      for (int32_t s = s_begin; s < s_end; ++s) {
        const int32_t a = __ldg(starts + s), e = __ldg(starts + s + 1);
        const int32_t nt = tiles_of(e - a);
        if (item < cum + nt) {
          t0 = a + (item - cum) * kTile;
          n = min(kTile, e - t0);
          slot1 = __ldg(b.segment_slots + s) + 1;
          len = e - a;
          break;
        }
        cum += nt;
      }
    }
    tile.t0 = warp_sum_i32(t0);
    tile.n = warp_sum_i32(n);
    tile.slot = warp_sum_i32(slot1) - 1;
    seg_len = warp_sum_i32(len);
  } else if (item < b.num_tokens) {
    tile = {item, 1, __ldg(b.token_slots + item), false};
  }
  tile.tensor = path == LoraPath::kTensorCores || (path == LoraPath::kAuto && seg_len >= kTile);
  return tile;
}

template <typename T>
__device__ __forceinline__ LoraModuleRef load_module(const PagedLoraWeights<T>& w, int32_t slot,
                                                     int32_t layer, int32_t proj) {
  const int64_t i = (static_cast<int64_t>(slot) * w.num_layers + layer) * w.num_projs + proj;
  return w.modules[i];
}

// ---- device side: paged addressing -------------------------------------------------------------

// A position in a matrix stored flat across its page list (sgmv.h): page list entry and offset.
// Moving it by a fixed step costs no division: the step is split once into whole pages and a rest.
struct PageCursor {
  int32_t page;
  int32_t off;
};
struct PageStep {
  int32_t pages;
  int32_t rest;  // < page_elems
};

__device__ __forceinline__ PageCursor cursor_at(int32_t flat, int32_t pe) {
  const int32_t page = flat / pe;
  return {page, flat - page * pe};
}
__device__ __forceinline__ PageStep step_of(int32_t step, int32_t pe) {
  const int32_t pages = step / pe;
  return {pages, step - pages * pe};
}
__device__ __forceinline__ void advance(PageCursor& c, const PageStep& s, int32_t pe) {
  c.page += s.pages;
  c.off += s.rest;
  if (c.off >= pe) {
    c.off -= pe;
    ++c.page;
  }
}
// The address of the element under the cursor, for a matrix whose page list starts at `pages`.
template <typename T>
__device__ __forceinline__ const T* paged_ptr(const T* pool, const int32_t* pages, int32_t pe,
                                              const PageCursor& c) {
  return pool + static_cast<int64_t>(__ldg(pages + c.page)) * pe + c.off;
}

// ---- device side: element types ----------------------------------------------------------------

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
    typename Vec2<T>::type h[kVec / 2];
    // memcpy, not a pointer cast: host compilers (the simulator build) enforce strict aliasing.
    memcpy(static_cast<void*>(h), &raw, sizeof(raw));
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

// Copies kVec elements of read-only data from src (16-byte aligned when kVec == 8) to dst, or
// zeros when !valid. Both bf16 and fp16 encode 0 as all-zero bits.
template <int kVec, typename T>
__device__ __forceinline__ void stage(T* dst, const T* src, bool valid) {
  if constexpr (kVec == kVecElems) {
    *reinterpret_cast<uint4*>(dst) =
        valid ? __ldg(reinterpret_cast<const uint4*>(src)) : make_uint4(0, 0, 0, 0);
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) dst[i] = valid ? src[i] : from_float<T>(0.f);
  }
}

// y[0..kVec) += acc, in float, rounded once to T. y is read and written by this thread only.
template <int kVec, typename T>
__device__ __forceinline__ void add_store(T* y, const float* acc) {
  if constexpr (kVec == kVecElems) {
    uint4 raw = *reinterpret_cast<const uint4*>(y);
    typename Vec2<T>::type h[kVec / 2];
    memcpy(static_cast<void*>(h), &raw, sizeof(raw));
#pragma unroll
    for (int i = 0; i < kVec / 2; ++i) {
      const float2 f = to_float2(h[i]);
      h[i] = pack2<T>(f.x + acc[2 * i], f.y + acc[2 * i + 1]);
    }
    memcpy(&raw, h, sizeof(raw));
    *reinterpret_cast<uint4*>(y) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) y[i] = from_float<T>(to_float(y[i]) + acc[i]);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

}  // namespace quilt::kernels::sgmv::detail
