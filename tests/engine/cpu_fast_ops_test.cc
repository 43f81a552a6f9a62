// The CPU backend's fast paths (issue 13) against their references: the vectorized exp and silu,
// the RoPE cos/sin cache (bit-identical to the per-token computation it replaced), threaded
// attention in real model shapes (GQA 9/3 and groups wider than one pass), threaded row ops, and
// grouped LoRA (dense GEMMs per adapter segment) against the scalar SGMV contract reference.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/simd.h"
#include "engine/model/rope.h"
#include "kernels/sgmv/sgmv.h"

namespace quilt::engine {
namespace {

Tensor filled(CpuBackend& b, int64_t rows, int64_t cols, std::mt19937& rng, float sd = 1.f) {
  Tensor t = b.allocate(rows, cols, DType::kF32).value();
  std::normal_distribution<float> d(0.f, sd);
  for (int64_t i = 0; i < rows * cols; ++i) t.as<float>()[i] = d(rng);
  return t;
}

TEST(CpuFastOpsTest, ExpApproxIsWithinTwoUlpOfStdExp) {
  double worst = 0;
  for (float x = -87.f; x <= 88.f; x += 0.0137f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(cpu::exp_approx(x) - ref) / ref);
  }
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(cpu::exp_approx(0.f), 1.f);
  EXPECT_TRUE(std::isnan(cpu::exp_approx(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_LT(cpu::exp_approx(-1000.f), 1e-37f);  // clamped: as good as 0 for softmax
  EXPECT_GT(cpu::exp_approx(1000.f), 1e38f);
}

TEST(CpuFastOpsTest, SiluMulMatchesTheFormulaOverWideRows) {
  CpuBackend b;
  std::mt19937 rng(3);
  // Rows wide and many enough to be threaded (a prefill); gate values far into both tails.
  Tensor gate = filled(b, 171, 1536, rng, 8.f), up = filled(b, 171, 1536, rng),
         out = b.allocate(171, 1536, DType::kF32).value();
  gate.as<float>()[0] = -100.f;
  gate.as<float>()[1] = 100.f;
  ASSERT_TRUE(b.silu_mul(gate, up, out).ok());
  for (int64_t i = 0; i < gate.num_elements(); ++i) {
    const double g = gate.as<float>()[i];
    const double ref = g / (1 + std::exp(-g)) * up.as<float>()[i];
    ASSERT_NEAR(out.as<float>()[i], ref, 1e-6 * std::max(1.0, std::abs(ref))) << i;
  }
}

TEST(CpuFastOpsTest, RmsNormAndAddOverManyRowsMatchTheScalarFormulas) {
  CpuBackend b;
  std::mt19937 rng(4);
  constexpr int kRows = 301;  // enough to be threaded
  Tensor x = filled(b, kRows, 576, rng), w = filled(b, 1, 576, rng), y = b.allocate(kRows, 576, DType::kF32).value();
  ASSERT_TRUE(b.rms_norm(x, w, 1e-5f, y).ok());
  for (int r = 0; r < kRows; ++r) {
    double ss = 0;
    for (int i = 0; i < 576; ++i) ss += double(x.as<float>()[r * 576 + i]) * x.as<float>()[r * 576 + i];
    const double inv = 1 / std::sqrt(ss / 576 + 1e-5);
    for (int i = 0; i < 576; ++i) {
      ASSERT_NEAR(y.as<float>()[r * 576 + i], w.as<float>()[i] * x.as<float>()[r * 576 + i] * inv, 1e-5);
    }
  }
  std::vector<float> before(y.as<float>(), y.as<float>() + y.num_elements());
  ASSERT_TRUE(b.add(y, x).ok());
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    ASSERT_EQ(y.as<float>()[i], before[i] + x.as<float>()[i]);
  }
  // A mismatched add is refused and changes nothing.
  Tensor small = b.allocate(2, 576, DType::kF32).value();
  EXPECT_FALSE(b.add(y, small).ok());
  EXPECT_EQ(y.as<float>()[0], before[0] + x.as<float>()[0]);
}

// The cache must give the very floats the per-token computation gave: same float32 angle, cos and
// sin in double, rounded, times attention_scaling. Positions past the first cache size, in
// decreasing order, and two tables used alternately (a model's global and local rope).
TEST(CpuFastOpsTest, RopeFromTheCacheIsBitIdenticalToThePerTokenComputation) {
  CpuBackend b;
  ModelConfig cfg;
  cfg.head_dim = 64;
  RopeTable global = make_rope_table(cfg);
  RopeTable local = global;
  for (float& f : local.inv_freq) f *= 0.25f;
  local.attention_scaling = 1.1f;
  StepLayout layout;
  layout.positions = {5000, 3, 0, 257, 1023, 4999, 131071};
  layout.token_ids.assign(layout.positions.size(), 0);
  ASSERT_TRUE(b.begin_step(layout).ok());
  std::mt19937 rng(6);
  for (int round = 0; round < 2; ++round) {
    for (const RopeTable* table : {&global, &local}) {
      const int64_t rows = static_cast<int64_t>(layout.positions.size());
      Tensor q = filled(b, rows, 9 * 64, rng), k = filled(b, rows, 3 * 64, rng);
      std::vector<float> q0(q.as<float>(), q.as<float>() + q.num_elements());
      ASSERT_TRUE(b.rope(*table, 64, q, k).ok());
      for (int64_t t = 0; t < rows; ++t) {
        const float pos = static_cast<float>(layout.positions[t]);
        for (int h = 0; h < 9; ++h) {
          for (int i = 0; i < 32; ++i) {
            const float angle = pos * table->inv_freq[i];
            const float c = static_cast<float>(std::cos(static_cast<double>(angle))) * table->attention_scaling;
            const float s = static_cast<float>(std::sin(static_cast<double>(angle))) * table->attention_scaling;
            const float a = q0[t * 576 + h * 64 + i], bb = q0[t * 576 + h * 64 + i + 32];
            const float want0 = a * c - bb * s, want1 = bb * c + a * s;
            ASSERT_EQ(q.as<float>()[t * 576 + h * 64 + i], want0) << "t " << t << " i " << i;
            ASSERT_EQ(q.as<float>()[t * 576 + h * 64 + i + 32], want1);
          }
        }
      }
    }
  }
}

// Attention in SmolLM2's shape (9 query heads over 3 KV heads, head_dim 64) and in a wide GQA group
// (12 heads per KV head: more than one pass), over many sequences: a decode batch and a prefill
// chunk, against dense attention in double.
void expect_attention_equals_dense(int heads, int kv_heads, int hd, const AttentionParams& params) {
  CpuBackend b;
  const int bs = 16, kv_dim = kv_heads * hd, num_blocks = 64;
  ASSERT_TRUE(b.init_kv_cache({2, num_blocks, bs, kv_heads, hd}).ok());
  std::mt19937 rng(7);
  struct Seq { int ctx; int q_len; std::vector<int32_t> blocks; };
  std::vector<Seq> seqs;
  std::vector<int32_t> free_blocks(num_blocks);
  for (int i = 0; i < num_blocks; ++i) free_blocks[i] = num_blocks - 1 - i;
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  const int shapes[][2] = {{130, 1}, {70, 1}, {1, 1}, {33, 1}, {100, 37}, {17, 17}};
  for (const auto& sh : shapes) {
    Seq s{sh[0], sh[1], {}};
    for (int p = 0; p < s.ctx; p += bs) {
      s.blocks.push_back(free_blocks.back());
      free_blocks.pop_back();
    }
    seqs.push_back(s);
  }
  std::vector<Tensor> ks, vs;
  for (const Seq& s : seqs) {
    ks.push_back(filled(b, s.ctx, kv_dim, rng));
    vs.push_back(filled(b, s.ctx, kv_dim, rng));
    StepLayout all;
    for (int p = 0; p < s.ctx; ++p) all.kv_slots.push_back(s.blocks[p / bs] * bs + p % bs);
    ASSERT_TRUE(b.begin_step(all).ok());
    ASSERT_TRUE(b.kv_store(1, ks.back(), vs.back()).ok());
  }
  StepLayout step;
  int rows = 0;
  for (const Seq& s : seqs) {
    StepLayout::Sequence ls;
    ls.q_start = rows;
    ls.q_len = s.q_len;
    ls.ctx_len = s.ctx;
    ls.block_offset = static_cast<int32_t>(step.block_tables.size());
    ls.num_blocks = static_cast<int32_t>(s.blocks.size());
    step.block_tables.insert(step.block_tables.end(), s.blocks.begin(), s.blocks.end());
    step.sequences.push_back(ls);
    rows += s.q_len;
  }
  ASSERT_TRUE(b.begin_step(step).ok());
  Tensor q = filled(b, rows, heads * hd, rng), out = b.allocate(rows, heads * hd, DType::kF32).value();
  ASSERT_TRUE(b.attention(1, q, heads, params, out).ok());
  const double scale = params.scale > 0 ? params.scale : 1 / std::sqrt(static_cast<double>(hd));
  const int group = heads / kv_heads;
  for (size_t si = 0; si < seqs.size(); ++si) {
    const auto& ls = step.sequences[si];
    for (int i = 0; i < ls.q_len; ++i) {
      const int row = ls.q_start + i, pos = ls.ctx_len - ls.q_len + i;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / group;
        std::vector<double> w(pos + 1, 0.0);
        double mx = -1e300, sum = 0;
        auto masked = [&](int p) { return params.sliding_window > 0 && pos - p >= params.sliding_window; };
        for (int p = 0; p <= pos; ++p) {
          if (masked(p)) continue;
          double d = 0;
          for (int e = 0; e < hd; ++e) {
            d += double(q.as<float>()[row * heads * hd + h * hd + e]) * ks[si].as<float>()[p * kv_dim + kvh * hd + e];
          }
          w[p] = d * scale;
          if (params.softcap > 0) w[p] = params.softcap * std::tanh(w[p] / params.softcap);
          mx = std::max(mx, w[p]);
        }
        for (int p = 0; p <= pos; ++p) {
          if (!masked(p)) sum += (w[p] = std::exp(w[p] - mx));
        }
        for (int e = 0; e < hd; ++e) {
          double ref = 0;
          for (int p = 0; p <= pos; ++p) {
            if (!masked(p)) ref += w[p] / sum * vs[si].as<float>()[p * kv_dim + kvh * hd + e];
          }
          ASSERT_NEAR(out.as<float>()[row * heads * hd + h * hd + e], ref, 2e-5)
              << "seq " << si << " row " << i << " head " << h << " dim " << e;
        }
      }
    }
  }
}

TEST(CpuFastOpsTest, AttentionInSmolLm2ShapeEqualsDense) {
  expect_attention_equals_dense(9, 3, 64, AttentionParams{});
}

TEST(CpuFastOpsTest, AttentionWithAWideGqaGroupEqualsDense) {
  expect_attention_equals_dense(24, 2, 32, AttentionParams{0.1f, 30.f, 0});
  expect_attention_equals_dense(24, 2, 32, AttentionParams{0.f, 0.f, 20});
}

// Grouped LoRA against the scalar SGMV reference on the same paged pool: three slots with ranks
// 16, 8 and 4 (one module of rank 0), pages scattered and a page size that rows straddle, segments
// with and without an adapter, both the SGMV (segments) and BGMV (per-token slots) views.
class GroupedLoraTest : public ::testing::Test {
 protected:
  static constexpr int kLayers = 2, kSlots = 3, kIn = 96, kOutQ = 96, kOutK = 32, kPageElems = 200;
  static constexpr int kPages = 400;

  void SetUp() override {
    ASSERT_TRUE(b_.init_lora_pool({kPages, kPageElems, kSlots, kLayers, false}).ok());
    std::vector<int32_t> free_pages(kPages);
    for (int i = 0; i < kPages; ++i) free_pages[i] = i;
    std::shuffle(free_pages.begin(), free_pages.end(), rng_);
    modules_.assign(kSlots * kLayers * 7, kernels::sgmv::LoraModuleRef{0, 0.f, 0, 0});
    const int ranks[kSlots] = {16, 8, 4};
    for (int s = 0; s < kSlots; ++s) {
      for (int l = 0; l < kLayers; ++l) {
        for (int p = 0; p < 3; ++p) {  // q, k, v
          if (s == 1 && l == 1 && p == 1) continue;  // rank 0: this adapter skips k in layer 1
          const int64_t out = p == 0 ? kOutQ : kOutK;
          kernels::sgmv::LoraModuleRef m{ranks[s], 0.5f + s, 0, 0};
          m.a_pages = add_matrix(ranks[s], kIn, free_pages);
          m.bt_pages = add_matrix(ranks[s], out, free_pages);
          modules_[(s * kLayers + l) * 7 + p] = m;
        }
      }
    }
    ASSERT_TRUE(b_.write_lora_tables(page_indices_, modules_).ok());
  }

  int32_t add_matrix(int64_t rows, int64_t dim, std::vector<int32_t>& free_pages) {
    const int32_t first = static_cast<int32_t>(page_indices_.size());
    const int64_t n = kernels::sgmv::pages_for_matrix(rows, dim, kPageElems);
    std::vector<int32_t> pages;
    for (int64_t i = 0; i < n; ++i) {
      pages.push_back(free_pages.back());
      free_pages.pop_back();
    }
    std::vector<float> data(n * kPageElems);
    std::normal_distribution<float> d;
    for (float& f : data) f = d(rng_);
    EXPECT_TRUE(b_.write_lora_pages(pages, data).ok());
    pool_pages_.emplace_back(pages, data);
    page_indices_.insert(page_indices_.end(), pages.begin(), pages.end());
    return first;
  }

  // The pool as the reference sees it.
  kernels::sgmv::PagedLoraWeights<float> reference_weights() {
    ref_pool_.assign(static_cast<size_t>(kPages) * kPageElems, 0.f);
    for (const auto& [pages, data] : pool_pages_) {
      for (size_t i = 0; i < pages.size(); ++i) {
        std::memcpy(ref_pool_.data() + pages[i] * kPageElems, data.data() + i * kPageElems,
                    kPageElems * sizeof(float));
      }
    }
    return {ref_pool_.data(), kPageElems, page_indices_.data(), modules_.data(), kLayers, 7};
  }

  void expect_matches_reference(StepLayout& step) {
    const int n = step.num_tokens();
    ASSERT_TRUE(b_.begin_step(step).ok());
    Tensor x = filled(b_, n, kIn, rng_);
    const int32_t projs[3] = {0, 1, 2};
    std::vector<Tensor> v;
    for (int i = 0; i < 3; ++i) v.push_back(b_.allocate(n, step.max_rank, DType::kF32).value());
    for (Tensor& t : v) std::fill_n(t.as<float>(), t.num_elements(), 7.f);  // must be overwritten
    const int32_t layer = 1;
    ASSERT_TRUE(b_.lora_shrink(x, layer, projs, v).ok());

    const auto w = reference_weights();
    const kernels::sgmv::LoraBatch batch{n, step.token_slots.data(),
                                         static_cast<int32_t>(step.segment_slots.size()),
                                         step.segment_starts.data(), step.segment_slots.data(),
                                         step.max_rank};
    std::vector<std::vector<float>> ref_v(3, std::vector<float>(n * step.max_rank));
    kernels::sgmv::ShrinkArgs sa{};
    sa.x = x.as<float>();
    sa.in_dim = kIn;
    sa.layer = layer;
    sa.num_projs = 3;
    for (int i = 0; i < 3; ++i) {
      sa.projs[i] = projs[i];
      sa.v[i] = ref_v[i].data();
    }
    kernels::sgmv::shrink_cpu(w, batch, sa);
    for (int i = 0; i < 3; ++i) {
      for (int64_t e = 0; e < n * step.max_rank; ++e) {
        ASSERT_NEAR(v[i].as<float>()[e], ref_v[i][e], 1e-4) << "proj " << i << " elem " << e;
      }
    }

    // Expand q, k, v into their slices of one fused row, on top of a random y.
    const int64_t width = kOutQ + 2 * kOutK;
    Tensor y = filled(b_, n, width, rng_);
    std::vector<float> ref_y(y.as<float>(), y.as<float>() + y.num_elements());
    const ProjectionSlice slices[3] = {{0, 0, kOutQ}, {1, kOutQ, kOutK}, {2, kOutQ + kOutK, kOutK}};
    ASSERT_TRUE(b_.lora_expand(v, layer, slices, y).ok());
    for (int i = 0; i < 3; ++i) {
      kernels::sgmv::ExpandArgs ea{ref_v[i].data(), ref_y.data() + slices[i].col, slices[i].cols,
                                   layer, slices[i].proj};
      ea.y_row_stride = width;
      kernels::sgmv::expand_cpu(w, batch, ea);
    }
    for (int64_t e = 0; e < y.num_elements(); ++e) {
      ASSERT_NEAR(y.as<float>()[e], ref_y[e], 1e-4) << "elem " << e;
    }
  }

  CpuBackend b_;
  std::mt19937 rng_{9};
  std::vector<int32_t> page_indices_;
  std::vector<kernels::sgmv::LoraModuleRef> modules_;
  std::vector<std::pair<std::vector<int32_t>, std::vector<float>>> pool_pages_;
  std::vector<float> ref_pool_;
};

StepLayout layout_of(const std::vector<int32_t>& token_slots, bool segments) {
  StepLayout step;
  step.token_slots = token_slots;
  step.token_ids.assign(token_slots.size(), 0);
  step.max_rank = 16;
  if (segments) {
    step.segment_starts.push_back(0);
    for (size_t t = 0; t < token_slots.size(); ++t) {
      if (t > 0 && token_slots[t] != token_slots[t - 1]) {
        step.segment_slots.push_back(token_slots[t - 1]);
        step.segment_starts.push_back(static_cast<int32_t>(t));
      }
    }
    step.segment_slots.push_back(token_slots.back());
    step.segment_starts.push_back(static_cast<int32_t>(token_slots.size()));
  }
  return step;
}

TEST_F(GroupedLoraTest, SegmentsMatchTheSgmvReference) {
  StepLayout step = layout_of({-1, -1, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, true);
  expect_matches_reference(step);
}

TEST_F(GroupedLoraTest, PerTokenSlotsMatchTheSgmvReference) {
  StepLayout step = layout_of({2, 0, 0, -1, 1, 1, 2, 0}, false);
  expect_matches_reference(step);
}

// A prefill-sized batch (threaded on the pool): long segments cut into pieces, short ones.
TEST_F(GroupedLoraTest, PrefillSizedBatchesMatchTheSgmvReference) {
  std::vector<int32_t> slots;
  for (int t = 0; t < 40; ++t) slots.push_back(2);
  for (int t = 0; t < 5; ++t) slots.push_back(-1);
  for (int t = 0; t < 33; ++t) slots.push_back(0);
  slots.push_back(1);
  StepLayout step = layout_of(slots, true);
  expect_matches_reference(step);
}

// New pages for a slot (a hot deploy reusing it) must be read, not a stale dense copy.
TEST_F(GroupedLoraTest, RewrittenPagesAreReadAfresh) {
  StepLayout step = layout_of({0, 0, 1, 2}, true);
  expect_matches_reference(step);
  for (auto& [pages, data] : pool_pages_) {
    for (float& f : data) f = -f * 0.5f;
    ASSERT_TRUE(b_.write_lora_pages(pages, data).ok());
  }
  expect_matches_reference(step);
}

}  // namespace
}  // namespace quilt::engine
