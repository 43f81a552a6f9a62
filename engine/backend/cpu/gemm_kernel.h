// The register-tiled GEMM kernel, written once over an ISA's vector ops (`Ops`). Included only by
// the ISA translation units, after their `#pragma GCC target`, so every function here is compiled
// for that ISA; it must not use std:: templates (their out-of-line copies would be shared across
// TUs with different targets). Ops provides: V, kWidth, kMR, kNR, kPackMR, zero(),
// load(const float*), load(const uint16_t*) (bf16 bits), load(const int8_t*), store(float*, V),
// broadcast(const float*), fma(a, b, c) = a*b + c, hsum(V).
//
// Two forms. Dot-product (block): a tile is MR rows of x against NR rows of w, MR*NR vector
// accumulators over K (both operands read along K, w in its stored dtype), reduced once at the
// end; the K tail (K % kWidth) runs scalar. For few x rows: every weight byte is read once.
// Outer-product (packed_block): w packed into float panels, kPackMR x rows broadcast against two
// vectors of a panel per k; for many x rows, which amortize the packing.
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

// --- the packed (outer-product) form, for many x rows (prefill) ---
// Weights packed in panels of kPanel = 2 vectors of columns: panel p holds, for every k, the
// float values w[p*kPanel + j][k] for j < kPanel (zeros past the last row), contiguous, so one
// k step loads 2 vectors of w and broadcasts one x value per row: MR*2 FMAs for 2 + MR loads.
template <class Ops>
constexpr int64_t panel_width() { return 2 * Ops::kWidth; }

template <class Ops, typename WT>
void pack_typed(const WT* w, int64_t ldw, int64_t rows, int64_t K, float* dst) {
  constexpr int64_t P = panel_width<Ops>();
  for (int64_t p0 = 0; p0 < rows; p0 += P) {
    float* d = dst + p0 * K;
    const int64_t n = rows - p0 < P ? rows - p0 : P;
    for (int64_t j = 0; j < P; ++j) {
      if (j >= n) {
        for (int64_t k = 0; k < K; ++k) d[k * P + j] = 0.f;
        continue;
      }
      const WT* src = w + (p0 + j) * ldw;
      for (int64_t k = 0; k < K; ++k) d[k * P + j] = widen1(src[k]);
    }
  }
}

// Floats pack() writes for `rows` weight rows.
template <class Ops>
int64_t packed_size(int64_t rows, int64_t K) {
  constexpr int64_t P = panel_width<Ops>();
  return (rows + P - 1) / P * P * K;
}

template <class Ops>
void pack(GemmWeightType type, const void* w, int64_t ldw, int64_t rows, int64_t K, float* dst) {
  switch (type) {
    case GemmWeightType::kF32:
      return pack_typed<Ops>(static_cast<const float*>(w), ldw, rows, K, dst);
    case GemmWeightType::kBF16:
      return pack_typed<Ops>(static_cast<const uint16_t*>(w), ldw, rows, K, dst);
    case GemmWeightType::kI8:
      return pack_typed<Ops>(static_cast<const int8_t*>(w), ldw, rows, K, dst);
  }
}

template <class Ops, int MR>
void panel_tile(const float* x, int64_t ldx, const float* panel, int64_t K, int64_t ncols,
                const float* scales, float* out, int64_t ldo, float beta) {
  using V = typename Ops::V;
  constexpr int64_t P = panel_width<Ops>();
  V acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = Ops::zero();
    acc[i][1] = Ops::zero();
  }
  for (int64_t k = 0; k < K; ++k) {
    const V w0 = Ops::load(panel + k * P);
    const V w1 = Ops::load(panel + k * P + Ops::kWidth);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V xb = Ops::broadcast(x + i * ldx + k);
      acc[i][0] = Ops::fma(xb, w0, acc[i][0]);
      acc[i][1] = Ops::fma(xb, w1, acc[i][1]);
    }
  }
  float row[P];
  for (int i = 0; i < MR; ++i) {
    Ops::store(row, acc[i][0]);
    Ops::store(row + Ops::kWidth, acc[i][1]);
    float* o = out + i * ldo;
    for (int64_t j = 0; j < ncols; ++j) {
      const float s = scales != nullptr ? row[j] * scales[j] : row[j];
      o[j] = beta == 0.f ? s : o[j] + s;
    }
  }
}

template <class Ops>
using PanelFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, const float*,
                         float*, int64_t, float);

// b.w: weights packed by pack() (b.N rows, b.K), b.ldw unused.
template <class Ops>
void packed_block(const GemmBlock& b) {
  static_assert(Ops::kPackMR <= 12);
  static constexpr PanelFn<Ops> fns[12] = {
      panel_tile<Ops, 1>, panel_tile<Ops, 2>, panel_tile<Ops, 3>,  panel_tile<Ops, 4>,
      panel_tile<Ops, 5>, panel_tile<Ops, 6>, panel_tile<Ops, 7>,  panel_tile<Ops, 8>,
      panel_tile<Ops, 9>, panel_tile<Ops, 10>, panel_tile<Ops, 11>, panel_tile<Ops, 12>};
  constexpr int64_t P = panel_width<Ops>();
  // K in chunks of kKChunk: a panel's chunk (P x kKChunk floats) and an x tile's stay in L1 while
  // the x tiles pass; each later chunk adds to out (the scales distribute over the sum).
  constexpr int64_t kKChunk = 256;
  const float* w = static_cast<const float*>(b.w);
  for (int64_t k0 = 0; k0 < b.K; k0 += kKChunk) {
    const int64_t kc = b.K - k0 < kKChunk ? b.K - k0 : kKChunk;
    const float beta = k0 == 0 ? b.beta : 1.f;
    for (int64_t n = 0; n < b.N; n += P) {
      const int64_t ncols = b.N - n < P ? b.N - n : P;
      const float* sc = b.scales != nullptr ? b.scales + n : nullptr;
      const float* panel = w + n * b.K + k0 * P;
      for (int64_t m = 0; m < b.M; m += Ops::kPackMR) {
        const int mr = b.M - m < Ops::kPackMR ? static_cast<int>(b.M - m) : Ops::kPackMR;
        fns[mr - 1](b.x + m * b.ldx + k0, b.ldx, panel, kc, ncols, sc, b.out + m * b.ldo + n,
                    b.ldo, beta);
      }
    }
  }
}

}  // namespace QUILT_GEMM_ISA
}  // namespace quilt::engine::cpu::detail
