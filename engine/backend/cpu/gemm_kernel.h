// The register-tiled GEMM kernel, written once over an ISA's vector ops (`Ops`). Included only by
// the ISA translation units, after their `#pragma GCC target`, so every function here is compiled
// for that ISA; it must not use std:: templates (their out-of-line copies would be shared across
// TUs with different targets). Ops provides: V, kWidth, kMR, kNR, zero(), load(const float*),
// load(const uint16_t*) (bf16 bits), load(const int8_t*), fma(a, b, c) = a*b + c, hsum(V).
//
// A tile is MR rows of x against NR rows of w: MR*NR vector accumulators over K (dot-product form,
// both operands read along K), reduced once at the end; the K tail (K % kWidth) runs scalar.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/backend/cpu/gemm_internal.h"

namespace quilt::engine::cpu::detail {
namespace QUILT_GEMM_ISA {

inline float widen1(float v) { return v; }
inline float widen1(int8_t v) { return static_cast<float>(v); }
inline float widen1(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <class Ops, int MR, int NR, typename WT>
void tile(const float* x, int64_t ldx, const WT* w, int64_t ldw, int64_t K, const float* scales,
          float* out, int64_t ldo, float beta) {
  using V = typename Ops::V;
  V acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = Ops::zero();
  const int64_t kv = K / Ops::kWidth * Ops::kWidth;
  for (int64_t k = 0; k < kv; k += Ops::kWidth) {
    V xv[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) xv[i] = Ops::load(x + i * ldx + k);
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const V wv = Ops::load(w + j * ldw + k);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = Ops::fma(xv[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = Ops::hsum(acc[i][j]);
      for (int64_t k = kv; k < K; ++k) s += x[i * ldx + k] * widen1(w[j * ldw + k]);
      if (scales != nullptr) s *= scales[j];
      float* o = out + i * ldo + j;
      *o = beta == 0.f ? s : *o + s;
    }
  }
}

template <class Ops, typename WT>
using TileFn = void (*)(const float*, int64_t, const WT*, int64_t, int64_t, const float*, float*,
                        int64_t, float);

// tiles[mr - 1][nr - 1]: the kernel for an mr x nr tile (edges use the smaller ones).
template <class Ops, typename WT, int MR>
struct TileRow {
  static constexpr TileFn<Ops, WT> fns[4] = {tile<Ops, MR, 1, WT>, tile<Ops, MR, 2, WT>,
                                              tile<Ops, MR, 3, WT>, tile<Ops, MR, 4, WT>};
};

template <class Ops, typename WT>
void block_typed(const GemmBlock& b) {
  static_assert(Ops::kMR <= 4 && Ops::kNR <= 4);
  const TileFn<Ops, WT>* rows[4] = {TileRow<Ops, WT, 1>::fns, TileRow<Ops, WT, 2>::fns,
                                    TileRow<Ops, WT, 3>::fns, TileRow<Ops, WT, 4>::fns};
  const WT* w = static_cast<const WT*>(b.w);
  // n outer, m inner: a tile's NR weight rows stay in L1 while every x row of the block passes.
  for (int64_t n = 0; n < b.N; n += Ops::kNR) {
    const int nr = b.N - n < Ops::kNR ? static_cast<int>(b.N - n) : Ops::kNR;
    const float* sc = b.scales != nullptr ? b.scales + n : nullptr;
    for (int64_t m = 0; m < b.M; m += Ops::kMR) {
      const int mr = b.M - m < Ops::kMR ? static_cast<int>(b.M - m) : Ops::kMR;
      rows[mr - 1][nr - 1](b.x + m * b.ldx, b.ldx, w + n * b.ldw, b.ldw, b.K, sc,
                           b.out + m * b.ldo + n, b.ldo, b.beta);
    }
  }
}

template <class Ops>
void block(const GemmBlock& b) {
  switch (b.wtype) {
    case GemmWeightType::kF32: return block_typed<Ops, float>(b);
    case GemmWeightType::kBF16: return block_typed<Ops, uint16_t>(b);
    case GemmWeightType::kI8: return block_typed<Ops, int8_t>(b);
  }
}

template <class Ops, typename WT>
void widen_typed(const WT* w, int64_t ldw, int64_t rows, int64_t K, float* dst) {
  const int64_t kv = K / Ops::kWidth * Ops::kWidth;
  for (int64_t r = 0; r < rows; ++r) {
    const WT* src = w + r * ldw;
    float* d = dst + r * K;
    for (int64_t k = 0; k < kv; k += Ops::kWidth) Ops::store(d + k, Ops::load(src + k));
    for (int64_t k = kv; k < K; ++k) d[k] = widen1(src[k]);
  }
}

template <class Ops>
void widen(GemmWeightType type, const void* w, int64_t ldw, int64_t rows, int64_t K, float* dst) {
  switch (type) {
    case GemmWeightType::kF32:
      return widen_typed<Ops>(static_cast<const float*>(w), ldw, rows, K, dst);
    case GemmWeightType::kBF16:
      return widen_typed<Ops>(static_cast<const uint16_t*>(w), ldw, rows, K, dst);
    case GemmWeightType::kI8:
      return widen_typed<Ops>(static_cast<const int8_t*>(w), ldw, rows, K, dst);
  }
}

}  // namespace QUILT_GEMM_ISA
}  // namespace quilt::engine::cpu::detail
