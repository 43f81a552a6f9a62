// The CPU reference of sgmv.h against a naive dense computation that knows nothing of pages.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/sgmv/sgmv.h"
#include "tests/kernels/sgmv_test_util.h"

namespace quilt::kernels::sgmv {
namespace {

using namespace test_util;  // NOLINT: the test helpers

// Mixed ranks per slot and per projection; slot 1 has a rank-0 projection, slot 4 goes past 128.
ProblemSpec spec(int64_t in_dim, int64_t out_dim, int64_t page_elems, uint64_t seed) {
  return {in_dim,
          out_dim,
          page_elems,
          {{16, 8, 0}, {4, 0, 64}, {1, 4, 1}, {128, 16, 8}, {256, 1, 0}},
          seed};
}

// Segments that exercise empty ones, slot -1, repeated slots and runs longer than any tile.
Layout sgmv_layout() {
  return segment_layout(
      {{1, 5}, {-1, 3}, {0, 9}, {2, 0}, {3, 1}, {4, 12}, {1, 2}, {-1, 1}, {2, 4}});
}

struct ShrinkOut {
  std::vector<float> v[kNumProjs];
};

constexpr int32_t kProjs[kNumProjs] = {2, 0, 1};  // a permuted order, to catch index mix-ups

ShrinkOut run_shrink(const Problem& p, const Layout& l, bool segments,
                     const std::vector<float>& x) {
  ShrinkOut out;
  ShrinkArgs args{x.data(), p.spec.in_dim, kLayer, kNumProjs, {}, {}};
  for (int i = 0; i < kNumProjs; ++i) {
    out.v[i].assign(static_cast<size_t>(l.num_tokens) * p.max_rank, sentinel());
    args.projs[i] = kProjs[i];
    args.v[i] = out.v[i].data();
  }
  shrink_cpu(p.weights(), l.batch(p.max_rank, segments), args);
  return out;
}

std::vector<float> run_expand(const Problem& p, const Layout& l, bool segments, int32_t proj,
                              const std::vector<float>& v, std::vector<float> y) {
  const ExpandArgs args{v.data(), y.data(), p.spec.out_dim, kLayer, proj};
  expand_cpu(p.weights(), l.batch(p.max_rank, segments), args);
  return y;
}

// y0: small random values where the token's module will add, the sentinel where nothing may.
std::vector<float> make_y0(const Problem& p, const Layout& l, int32_t proj, uint64_t seed) {
  std::vector<float> y =
      random_values(static_cast<size_t>(l.num_tokens) * p.spec.out_dim, 0.05f, seed, no_rounding);
  for (int32_t t = 0; t < l.num_tokens; ++t) {
    if (token_rank(p, l, t, proj) > 0) continue;
    std::fill_n(y.begin() + static_cast<int64_t>(t) * p.spec.out_dim, p.spec.out_dim, sentinel());
  }
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class SgmvCpu : public ::testing::TestWithParam<std::array<int64_t, 3>> {};

TEST_P(SgmvCpu, ShrinkMatchesDense) {
  const auto [in_dim, out_dim, pe] = GetParam();
  const Problem p = make_problem(spec(in_dim, out_dim, pe, 11));
  const Layout l = sgmv_layout();
  const std::vector<float> x =
      random_values(static_cast<size_t>(l.num_tokens) * in_dim, 1.f, 12, no_rounding);
  const ShrinkOut got = run_shrink(p, l, /*segments=*/true, x);
  for (int i = 0; i < kNumProjs; ++i) {
    const int32_t proj = kProjs[i];
    int bad = 0;
    for (int32_t t = 0; t < l.num_tokens; ++t) {
      const int32_t rank = token_rank(p, l, t, proj);
      for (int32_t j = 0; j < p.max_rank; ++j) {
        const float g = got.v[i][static_cast<size_t>(t) * p.max_rank + j];
        if (j >= rank) {  // no adapter, rank 0, or past rank: written as 0
          bad += std::bit_cast<uint32_t>(g) != 0;
          continue;
        }
        const std::vector<float>& a = p.a[l.token_slots[t] * kNumProjs + proj];
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < in_dim; ++k) {
          const double term = double{x[t * in_dim + k]} * a[j * in_dim + k];
          ref += term;
          mag += std::fabs(term);
        }
        bad += !(std::fabs(g - ref) <= 1e-5 * mag + 1e-7);
      }
    }
    EXPECT_EQ(bad, 0) << "proj " << proj;
  }
}

TEST_P(SgmvCpu, ExpandMatchesDense) {
  const auto [in_dim, out_dim, pe] = GetParam();
  const Problem p = make_problem(spec(in_dim, out_dim, pe, 21));
  const Layout l = sgmv_layout();
  for (int32_t proj = 0; proj < kNumProjs; ++proj) {
    const std::vector<float> v = make_expand_v(p, l, proj, 22 + proj);
    const std::vector<float> y0 = make_y0(p, l, proj, 32 + proj);
    const std::vector<float> got = run_expand(p, l, /*segments=*/true, proj, v, y0);
    int bad = 0;
    for (int32_t t = 0; t < l.num_tokens; ++t) {
      const int32_t rank = token_rank(p, l, t, proj);
      for (int64_t n = 0; n < out_dim; ++n) {
        const size_t i = static_cast<size_t>(t) * out_dim + n;
        if (rank == 0) {
          bad += !is_sentinel(got[i]);
          continue;
        }
        const LoraModuleRef& m = p.module(l.token_slots[t], proj);
        const std::vector<float>& bt = p.bt[l.token_slots[t] * kNumProjs + proj];
        double ref = y0[i], mag = std::fabs(y0[i]);
        for (int32_t j = 0; j < rank; ++j) {
          const double term =
              double{m.scale} * v[static_cast<size_t>(t) * p.max_rank + j] * bt[j * out_dim + n];
          ref += term;
          mag += std::fabs(term);
        }
        bad += !(std::fabs(got[i] - ref) <= 1e-5 * mag + 1e-7);
      }
    }
    EXPECT_EQ(bad, 0) << "proj " << proj;
  }
}

// A slice of a wider row (fused q/k/v output): the same sums in its columns, nothing elsewhere.
TEST_P(SgmvCpu, ExpandIntoASliceOfAWiderRow) {
  const auto [in_dim, out_dim, pe] = GetParam();
  const Problem p = make_problem(spec(in_dim, out_dim, pe, 51));
  const Layout l = sgmv_layout();
  constexpr int64_t kCol = 3, kExtra = 7;
  const int64_t stride = out_dim + kExtra;
  for (int32_t proj = 0; proj < kNumProjs; ++proj) {
    const std::vector<float> v = make_expand_v(p, l, proj, 52 + proj);
    const std::vector<float> y0 = make_y0(p, l, proj, 62 + proj);
    const std::vector<float> want = run_expand(p, l, /*segments=*/true, proj, v, y0);
    std::vector<float> wide(static_cast<size_t>(l.num_tokens) * stride, sentinel());
    for (int32_t t = 0; t < l.num_tokens; ++t) {
      std::copy_n(y0.begin() + t * out_dim, out_dim, wide.begin() + t * stride + kCol);
    }
    ExpandArgs args{v.data(), wide.data() + kCol, out_dim, kLayer, proj};
    args.y_row_stride = stride;
    expand_cpu(p.weights(), l.batch(p.max_rank, true), args);
    int bad = 0;
    for (int32_t t = 0; t < l.num_tokens; ++t) {
      for (int64_t c = 0; c < stride; ++c) {
        const float g = wide[t * stride + c];
        if (c < kCol || c >= kCol + out_dim) {
          bad += !is_sentinel(g);
        } else {
          const float w = want[t * out_dim + c - kCol];
          bad += std::memcmp(&g, &w, sizeof(float)) != 0;
        }
      }
    }
    EXPECT_EQ(bad, 0) << "proj " << proj;
  }
}

// The two views of one batch must give the same numbers, bit for bit: the engine picks either.
TEST_P(SgmvCpu, SegmentsAndPerTokenSlotsAgree) {
  const auto [in_dim, out_dim, pe] = GetParam();
  const Problem p = make_problem(spec(in_dim, out_dim, pe, 31));
  const Layout l = sgmv_layout();
  const std::vector<float> x =
      random_values(static_cast<size_t>(l.num_tokens) * in_dim, 1.f, 32, no_rounding);
  const ShrinkOut seg = run_shrink(p, l, true, x);
  const ShrinkOut tok = run_shrink(p, l, false, x);
  for (int i = 0; i < kNumProjs; ++i) EXPECT_TRUE(same_bits(seg.v[i], tok.v[i])) << "proj " << i;

  for (int32_t proj = 0; proj < kNumProjs; ++proj) {
    const std::vector<float> v = make_expand_v(p, l, proj, 33 + proj);
    const std::vector<float> y0 = make_y0(p, l, proj, 43 + proj);
    EXPECT_TRUE(
        same_bits(run_expand(p, l, true, proj, v, y0), run_expand(p, l, false, proj, v, y0)))
        << "proj " << proj;
  }
}

// (in_dim, out_dim, page_elems): pages shorter than a row everywhere, so rows span pages and the
// last page of a row is partly used; 176 and 100 are not multiples of a page or of each other.
INSTANTIATE_TEST_SUITE_P(Widths, SgmvCpu,
                         ::testing::Values(std::array<int64_t, 3>{176, 100, 48},
                                           std::array<int64_t, 3>{32, 64, 16},
                                           std::array<int64_t, 3>{100, 176, 40},
                                           std::array<int64_t, 3>{4096, 1000, 1024}),
                         [](const auto& info) {
                           return std::to_string(info.param[0]) + "x" +
                                  std::to_string(info.param[1]) + "_page" +
                                  std::to_string(info.param[2]);
                         });

TEST(SgmvCpuLayout, PagesAreScatteredAndRowsSpanPages) {
  const Problem p = make_problem(spec(176, 100, 48, 5));
  // The test's premise: a matrix's pages are not consecutive in the pool.
  const LoraModuleRef& m = p.module(3, 0);  // rank 128
  int consecutive = 0;
  for (int q = 0; q + 1 < 4; ++q) {
    consecutive += p.page_indices[m.a_pages + q + 1] == p.page_indices[m.a_pages + q] + 1;
  }
  EXPECT_LT(consecutive, 3);
  // Flat storage: 128 rows of 176 take ceil(128 · 176 / 48) pages, not 128 · ceil(176 / 48).
  EXPECT_EQ(m.bt_pages - m.a_pages, (128 * 176 + 47) / 48);
}

// A narrow matrix packs several rows to a page: GQA's k/v Bᵀ (out_dim = hidden / 4) wastes at most
// one partial page per matrix.
TEST(SgmvCpuLayout, NarrowMatricesSharePages) {
  EXPECT_EQ(pages_for_matrix(16, 1024, 4096), 4);
  EXPECT_EQ(pages_for_matrix(16, 4096, 4096), 16);
  EXPECT_EQ(pages_for_matrix(3, 1000, 4096), 1);
  EXPECT_EQ(pages_for_matrix(0, 1000, 4096), 0);
}

}  // namespace
}  // namespace quilt::kernels::sgmv
