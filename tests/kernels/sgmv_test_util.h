// Random LoRA problems in the paged layout of sgmv.h, shared by the CPU and CUDA kernel tests.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "kernels/sgmv/sgmv.h"

namespace quilt::kernels::sgmv::test_util {

inline constexpr int32_t kNumLayers = 2;
// The layer under test. Layer 0's modules point at other rows with other ranks and scales, so a
// kernel that indexes the wrong layer reads wrong data instead of passing by luck.
inline constexpr int32_t kLayer = 1;
inline constexpr int32_t kNumProjs = 3;  // q, k, v: fused in one shrink

// Poison for float outputs: a NaN with a payload no arithmetic produces, compared bit for bit.
inline constexpr uint32_t kSentinelBits = 0x7fc0dead;
inline float sentinel() { return std::bit_cast<float>(kSentinelBits); }
inline bool is_sentinel(float v) { return std::bit_cast<uint32_t>(v) == kSentinelBits; }

using RoundFn = float (*)(float);
inline float no_rounding(float v) { return v; }

struct ProblemSpec {
  int64_t in_dim;
  int64_t out_dim;
  int64_t page_elems;
  std::vector<std::array<int32_t, kNumProjs>> ranks;  // [slot][proj] at kLayer; 0 = not targeted
  uint64_t seed;
  RoundFn round = no_rounding;  // every stored weight passes through it (to bf16/fp16 and back)
  // Per-projection Bᵀ widths where they differ (GQA's narrow k/v); 0 = out_dim.
  std::array<int64_t, kNumProjs> proj_out_dim{};

  int64_t out_dim_of(int32_t proj) const {
    return proj_out_dim[proj] > 0 ? proj_out_dim[proj] : out_dim;
  }
};

struct Problem {
  ProblemSpec spec;
  int32_t num_slots = 0;
  int32_t max_rank = 0;
  std::vector<float> pool;  // [num_pages, page_elems]; NaN wherever no row lives
  std::vector<int32_t> page_indices;
  std::vector<LoraModuleRef> modules;  // [num_slots, kNumLayers, kNumProjs]
  std::vector<std::vector<float>> a;   // [slot * kNumProjs + proj]: dense [rank, in_dim] at kLayer
  std::vector<std::vector<float>> bt;  // same, dense [rank, spec.out_dim_of(proj)]

  PagedLoraWeights<float> weights() const {
    return {pool.data(),    spec.page_elems, page_indices.data(),
            modules.data(), kNumLayers,      kNumProjs};
  }
  const LoraModuleRef& module(int32_t slot, int32_t proj) const {
    return modules[(static_cast<size_t>(slot) * kNumLayers + kLayer) * kNumProjs + proj];
  }
};

// Scattered pages: every matrix gets its pages from a shuffled permutation of the pool, with spare
// pages (left NaN) mixed in, so contiguity assumptions and reads of unowned memory both show up.
// Matrices are stored flat (sgmv.h): rows straddle pages, and the tail of a matrix's last page is
// NaN, so a read past the end of a matrix turns into NaN.
inline Problem make_problem(const ProblemSpec& spec) {
  Problem p;
  p.spec = spec;
  p.num_slots = static_cast<int32_t>(spec.ranks.size());
  std::mt19937_64 rng(spec.seed);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  const int64_t pe = spec.page_elems;

  // Layer kLayer holds the ranks under test, layer 0 half of them in matrices of its own.
  int64_t pages_needed = 0;
  for (const auto& r : spec.ranks) {
    for (int32_t q = 0; q < kNumProjs; ++q) {
      const int32_t rank = r[q];
      for (int32_t rr : {rank, rank / 2}) {
        pages_needed +=
            pages_for_matrix(rr, spec.in_dim, pe) + pages_for_matrix(rr, spec.out_dim_of(q), pe);
      }
      p.max_rank = std::max(p.max_rank, rank);
    }
  }
  const int64_t num_pages = pages_needed + pages_needed / 3 + 2;
  std::vector<int32_t> perm(num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  p.pool.assign(num_pages * pe, std::numeric_limits<float>::quiet_NaN());
  p.page_indices.reserve(pages_needed);
  p.modules.assign(static_cast<size_t>(p.num_slots) * kNumLayers * kNumProjs, LoraModuleRef{});
  p.a.resize(static_cast<size_t>(p.num_slots) * kNumProjs);
  p.bt.resize(p.a.size());

  // Appends a rows × dim matrix with fresh values, flat over new pages; returns its page-list
  // offset.
  auto add_matrix = [&](int32_t rows, int64_t dim, float amplitude, std::vector<float>& dense) {
    const int32_t first = static_cast<int32_t>(p.page_indices.size());
    for (int64_t q = 0; q < pages_for_matrix(rows, dim, pe); ++q) {
      p.page_indices.push_back(perm[p.page_indices.size()]);
    }
    dense.resize(static_cast<size_t>(rows) * dim);
    for (int64_t f = 0; f < rows * dim; ++f) {
      const float v = spec.round(amplitude * uni(rng));
      dense[f] = v;
      p.pool[p.page_indices[first + f / pe] * pe + f % pe] = v;
    }
    return first;
  };

  const float a_amp = 1.f / std::sqrt(static_cast<float>(spec.in_dim));
  std::vector<float> unused;
  for (int32_t s = 0; s < p.num_slots; ++s) {
    for (int32_t q = 0; q < kNumProjs; ++q) {
      const int32_t rank = spec.ranks[s][q];
      LoraModuleRef m{rank, 0.f, 0, 0};
      if (rank > 0) {
        m.scale = (0.5f + 0.5f * (uni(rng) + 1.f)) / std::sqrt(static_cast<float>(rank));
        m.a_pages = add_matrix(rank, spec.in_dim, a_amp, p.a[s * kNumProjs + q]);
        m.bt_pages = add_matrix(rank, spec.out_dim_of(q), 1.f, p.bt[s * kNumProjs + q]);
      }
      p.modules[(static_cast<size_t>(s) * kNumLayers + kLayer) * kNumProjs + q] = m;
      // Layer 0: other matrices of half the rank, another scale.
      LoraModuleRef m0{0, 0.f, 0, 0};
      if (rank >= 2) {
        m0.rank = rank / 2;
        m0.scale = -3.f * m.scale;
        m0.a_pages = add_matrix(m0.rank, spec.in_dim, a_amp, unused);
        m0.bt_pages = add_matrix(m0.rank, spec.out_dim_of(q), 1.f, unused);
      }
      p.modules[(static_cast<size_t>(s) * kNumLayers + 0) * kNumProjs + q] = m0;
    }
  }
  return p;
}

// One step's token layout. SGMV layouts fill token_slots too (the slot each token ends up with), so
// the same layout can be run as BGMV.
struct Layout {
  int32_t num_tokens = 0;
  std::vector<int32_t> token_slots;
  std::vector<int32_t> segment_starts;  // empty: BGMV
  std::vector<int32_t> segment_slots;

  LoraBatch batch(int32_t max_rank, bool segments) const {
    if (segments) {
      return {num_tokens,
              token_slots.data(),
              static_cast<int32_t>(segment_slots.size()),
              segment_starts.data(),
              segment_slots.data(),
              max_rank};
    }
    return {num_tokens, token_slots.data(), 0, nullptr, nullptr, max_rank};
  }
};

// segs: (slot, length) in order; lengths may be 0.
inline Layout segment_layout(const std::vector<std::pair<int32_t, int32_t>>& segs) {
  Layout l;
  l.segment_starts.push_back(0);
  for (const auto& [slot, len] : segs) {
    for (int32_t i = 0; i < len; ++i) l.token_slots.push_back(slot);
    l.segment_slots.push_back(slot);
    l.segment_starts.push_back(static_cast<int32_t>(l.token_slots.size()));
  }
  l.num_tokens = static_cast<int32_t>(l.token_slots.size());
  return l;
}

inline Layout per_token_layout(std::vector<int32_t> slots) {
  Layout l;
  l.num_tokens = static_cast<int32_t>(slots.size());
  l.token_slots = std::move(slots);
  return l;
}

// `n` slots drawn from [-1, num_slots), unsorted, with some repeats next to each other.
inline std::vector<int32_t> random_slots(int32_t n, int32_t num_slots, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> pick(-1, num_slots - 1);
  std::vector<int32_t> s;
  while (static_cast<int32_t>(s.size()) < n) {
    const int32_t slot = pick(rng);
    const int32_t repeat = (rng() % 4 == 0) ? 3 : 1;
    for (int32_t i = 0; i < repeat && static_cast<int32_t>(s.size()) < n; ++i) s.push_back(slot);
  }
  return s;
}

inline std::vector<float> random_values(size_t n, float amplitude, uint64_t seed, RoundFn round) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(-amplitude, amplitude);
  std::vector<float> v(n);
  for (float& e : v) e = round(uni(rng));
  return v;
}

// rank of `proj` for token t's slot at kLayer (0 when the token has no adapter).
inline int32_t token_rank(const Problem& p, const Layout& l, int32_t t, int32_t proj) {
  const int32_t slot = l.token_slots[t];
  return slot < 0 ? 0 : p.module(slot, proj).rank;
}

// An expand input: random in the columns each token's module uses, the sentinel elsewhere, so any
// read past rank (or of a token without adapter) turns into NaN in y.
inline std::vector<float> make_expand_v(const Problem& p, const Layout& l, int32_t proj,
                                        uint64_t seed) {
  std::vector<float> v =
      random_values(static_cast<size_t>(l.num_tokens) * p.max_rank, 1.f, seed, no_rounding);
  for (int32_t t = 0; t < l.num_tokens; ++t) {
    const int32_t rank = token_rank(p, l, t, proj);
    for (int32_t j = rank; j < p.max_rank; ++j)
      v[static_cast<size_t>(t) * p.max_rank + j] = sentinel();
  }
  return v;
}

}  // namespace quilt::kernels::sgmv::test_util
