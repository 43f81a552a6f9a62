// CpuBackend ops against direct dense formulas: paged attention with GQA and chunked prefill (with
// scale, soft-capping and sliding window), RMSNorm (whole rows and per head), RoPE (LongRoPE too),
// matmul, the gated activations, bias, scale and soft-capping.
#include "engine/backend/cpu/cpu_backend.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "engine/model/rope.h"

namespace quilt::engine {
namespace {

Tensor filled(CpuBackend& b, int64_t rows, int64_t cols, std::mt19937& rng) {
  Tensor t = b.allocate(rows, cols, DType::kF32).value();
  std::normal_distribution<float> d;
  for (int64_t i = 0; i < rows * cols; ++i) t.as<float>()[i] = d(rng);
  return t;
}

TEST(CpuBackendTest, MatmulIsXTimesWTransposed) {
  CpuBackend b;
  std::mt19937 rng(1);
  Tensor x = filled(b, 3, 5, rng), w = filled(b, 4, 5, rng),
         y = b.allocate(3, 4, DType::kF32).value();
  ASSERT_TRUE(b.matmul(x, w, y).ok());
  for (int i = 0; i < 3; ++i) {
    for (int n = 0; n < 4; ++n) {
      double ref = 0;
      for (int k = 0; k < 5; ++k) ref += x.as<float>()[i * 5 + k] * w.as<float>()[n * 5 + k];
      EXPECT_NEAR(y.as<float>()[i * 4 + n], ref, 1e-5);
    }
  }
}

TEST(CpuBackendTest, RmsNormScalesByTheRootMeanSquare) {
  CpuBackend b;
  Tensor x = b.allocate(1, 4, DType::kF32).value(), w = b.allocate(1, 4, DType::kF32).value(),
         y = b.allocate(1, 4, DType::kF32).value();
  const float xs[] = {1, 2, 3, 4}, ws[] = {1, 0.5f, 2, 1};
  std::copy(xs, xs + 4, x.as<float>());
  std::copy(ws, ws + 4, w.as<float>());
  ASSERT_TRUE(b.rms_norm(x, w, 0.f, y).ok());
  const float rms = std::sqrt((1 + 4 + 9 + 16) / 4.f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y.as<float>()[i], ws[i] * xs[i] / rms, 1e-6);
}

TEST(CpuBackendTest, RopeRotatesHalvesByPositionTimesFrequency) {
  CpuBackend b;
  ModelConfig cfg;
  cfg.head_dim = 4;
  RopeTable table = make_rope_table(cfg);  // inv_freq = {1, 0.01}
  StepLayout layout;
  layout.token_ids = {0};
  layout.positions = {3};
  ASSERT_TRUE(b.begin_step(layout).ok());
  Tensor q = b.allocate(1, 4, DType::kF32).value(), k = b.allocate(1, 4, DType::kF32).value();
  const float v[] = {1, 2, 3, 4};
  std::copy(v, v + 4, q.as<float>());
  std::copy(v, v + 4, k.as<float>());
  ASSERT_TRUE(b.rope(table, 4, q, k).ok());
  const double a0 = 3 * 1.0, a1 = 3 * 0.01;
  EXPECT_NEAR(q.as<float>()[0], 1 * std::cos(a0) - 3 * std::sin(a0), 1e-5);
  EXPECT_NEAR(q.as<float>()[2], 3 * std::cos(a0) + 1 * std::sin(a0), 1e-5);
  EXPECT_NEAR(q.as<float>()[1], 2 * std::cos(a1) - 4 * std::sin(a1), 1e-5);
  EXPECT_NEAR(k.as<float>()[3], 4 * std::cos(a1) + 2 * std::sin(a1), 1e-5);
}

// Two sequences with scattered blocks: one a prefill chunk after 5 cached tokens, one a decode,
// against dense attention in double with the same scale, soft-capping and sliding window.
void expect_paged_attention_equals_dense(const AttentionParams& params) {
  CpuBackend b;
  const int heads = 4, kv_heads = 2, hd = 8, bs = 4, kv_dim = kv_heads * hd;
  ASSERT_TRUE(b.init_kv_cache({1, 16, bs, kv_heads, hd}).ok());
  std::mt19937 rng(5);
  struct Seq { int ctx; int q_len; std::vector<int32_t> blocks; };
  std::vector<Seq> seqs = {{12, 7, {9, 2, 14}}, {6, 1, {5, 11}}};
  // Full K/V of each sequence, written to the cache through kv_store in one step.
  std::vector<Tensor> ks, vs;
  StepLayout all;
  for (size_t s = 0; s < seqs.size(); ++s) {
    ks.push_back(filled(b, seqs[s].ctx, kv_dim, rng));
    vs.push_back(filled(b, seqs[s].ctx, kv_dim, rng));
    all.kv_slots.clear();
    for (int p = 0; p < seqs[s].ctx; ++p) all.kv_slots.push_back(seqs[s].blocks[p / bs] * bs + p % bs);
    ASSERT_TRUE(b.begin_step(all).ok());
    ASSERT_TRUE(b.kv_store(0, ks[s], vs[s]).ok());
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
  Tensor q = filled(b, rows, heads * hd, rng),
         out = b.allocate(rows, heads * hd, DType::kF32).value();
  ASSERT_TRUE(b.attention(0, q, heads, params, out).ok());

  const double scale = params.scale > 0 ? params.scale : 1 / std::sqrt(static_cast<double>(hd));
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto& ls = step.sequences[s];
    for (int i = 0; i < ls.q_len; ++i) {
      const int row = ls.q_start + i, pos = ls.ctx_len - ls.q_len + i;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / (heads / kv_heads);
        std::vector<double> w(pos + 1, 0.0);
        double mx = -1e30, sum = 0;
        for (int p = 0; p <= pos; ++p) {
          if (params.sliding_window > 0 && pos - p >= params.sliding_window) continue;  // masked
          double d = 0;
          for (int e = 0; e < hd; ++e) d += q.as<float>()[row * heads * hd + h * hd + e] * ks[s].as<float>()[p * kv_dim + kvh * hd + e];
          w[p] = d * scale;
          if (params.softcap > 0) w[p] = params.softcap * std::tanh(w[p] / params.softcap);
          mx = std::max(mx, w[p]);
        }
        for (int p = 0; p <= pos; ++p) {
          if (params.sliding_window > 0 && pos - p >= params.sliding_window) continue;
          sum += (w[p] = std::exp(w[p] - mx));
        }
        for (int e = 0; e < hd; ++e) {
          double ref = 0;
          for (int p = 0; p <= pos; ++p) ref += w[p] / sum * vs[s].as<float>()[p * kv_dim + kvh * hd + e];
          EXPECT_NEAR(out.as<float>()[row * heads * hd + h * hd + e], ref, 1e-5) << "seq " << s << " row " << i;
        }
      }
    }
  }
}

TEST(CpuBackendTest, PagedAttentionEqualsDenseCausalAttentionWithGqa) {
  expect_paged_attention_equals_dense(AttentionParams{});
}

// Gemma 2: query_pre_attn_scalar's scale and tanh soft-capping of the scores.
TEST(CpuBackendTest, PagedAttentionWithScaleAndSoftcapEqualsDense) {
  expect_paged_attention_equals_dense(AttentionParams{0.2f, 1.5f, 0});
}

// Mistral and Gemma's local layers: a window shorter than both contexts, and one that is not.
TEST(CpuBackendTest, PagedAttentionWithSlidingWindowEqualsDense) {
  expect_paged_attention_equals_dense(AttentionParams{0.f, 0.f, 3});
  expect_paged_attention_equals_dense(AttentionParams{0.f, 0.f, 1});
  expect_paged_attention_equals_dense(AttentionParams{0.f, 0.f, 64});
}

// The window is a mask, not a context cap: a window of 1 makes each query attend to itself only,
// so the output is its own V row.
TEST(CpuBackendTest, SlidingWindowOfOneReturnsTheOwnValueRow) {
  CpuBackend b;
  const int hd = 4;
  ASSERT_TRUE(b.init_kv_cache({1, 4, 4, 1, hd}).ok());
  std::mt19937 rng(2);
  Tensor k = filled(b, 5, hd, rng), v = filled(b, 5, hd, rng), q = filled(b, 5, hd, rng),
         out = b.allocate(5, hd, DType::kF32).value();
  StepLayout step;
  step.kv_slots = {0, 1, 2, 3, 4};
  step.block_tables = {0, 1};
  step.sequences.push_back({});
  step.sequences[0].q_len = 5;
  step.sequences[0].ctx_len = 5;
  step.sequences[0].num_blocks = 2;
  ASSERT_TRUE(b.begin_step(step).ok());
  ASSERT_TRUE(b.kv_store(0, k, v).ok());
  ASSERT_TRUE(b.attention(0, q, 1, AttentionParams{0.f, 0.f, 1}, out).ok());
  for (int i = 0; i < 5 * hd; ++i) EXPECT_FLOAT_EQ(out.as<float>()[i], v.as<float>()[i]);
}

// gate and up as the halves of one fused row, as the model passes them.
TEST(CpuBackendTest, GeluTanhMulIsTanhApproximatedGeluOfGateTimesUp) {
  CpuBackend b;
  std::mt19937 rng(3);
  Tensor fused = filled(b, 3, 10, rng), out = b.allocate(3, 5, DType::kF32).value();
  ASSERT_TRUE(b.gelu_tanh_mul(fused.columns(0, 5), fused.columns(5, 5), out).ok());
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 5; ++c) {
      const double g = fused.as<float>()[r * 10 + c], u = fused.as<float>()[r * 10 + 5 + c];
      const double gelu = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
      EXPECT_NEAR(out.as<float>()[r * 5 + c], gelu * u, 1e-6);
    }
  }
}

TEST(CpuBackendTest, AddBiasAddsTheRowToEveryRow) {
  CpuBackend b;
  std::mt19937 rng(4);
  Tensor y = filled(b, 3, 4, rng), bias = filled(b, 1, 4, rng);
  const std::vector<float> before(y.as<float>(), y.as<float>() + 12);
  ASSERT_TRUE(b.add_bias(y, bias).ok());
  for (int i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(y.as<float>()[i], before[i] + bias.as<float>()[i % 4]);
  Tensor wrong = filled(b, 1, 3, rng);
  EXPECT_FALSE(b.add_bias(y, wrong).ok());
}

// The k part of a fused q | k | v row: each head normalized on its own; q and v untouched.
TEST(CpuBackendTest, RmsNormHeadsNormalizesEachHeadOfAView) {
  CpuBackend b;
  std::mt19937 rng(6);
  const int hd = 4;
  Tensor qkv = filled(b, 2, 5 * hd, rng), w = filled(b, 1, hd, rng);
  const std::vector<float> before(qkv.as<float>(), qkv.as<float>() + qkv.num_elements());
  Tensor k = qkv.columns(hd, 2 * hd);
  ASSERT_TRUE(b.rms_norm_heads(k, w, hd, 1e-6f).ok());
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 5 * hd; ++c) {
      const int i = r * 5 * hd + c;
      if (c < hd || c >= 3 * hd) {
        EXPECT_EQ(qkv.as<float>()[i], before[i]);
        continue;
      }
      const int head_start = r * 5 * hd + (c / hd) * hd;
      double ss = 0;
      for (int e = 0; e < hd; ++e) ss += before[head_start + e] * before[head_start + e];
      const double ref = w.as<float>()[c % hd] * before[i] / std::sqrt(ss / hd + 1e-6);
      EXPECT_NEAR(qkv.as<float>()[i], ref, 1e-5);
    }
  }
}

TEST(CpuBackendTest, ScaleAndSoftcap) {
  CpuBackend b;
  Tensor x = b.allocate(1, 3, DType::kF32).value();
  const float xs[] = {-40.f, 0.5f, 100.f};
  std::copy(xs, xs + 3, x.as<float>());
  ASSERT_TRUE(b.scale(x, 2.f).ok());
  EXPECT_FLOAT_EQ(x.as<float>()[1], 1.f);
  ASSERT_TRUE(b.softcap(x, 30.f).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(x.as<float>()[i], 30.0 * std::tanh(2.0 * xs[i] / 30.0), 1e-5);
    EXPECT_LT(std::abs(x.as<float>()[i]), 30.f);
  }
}

// LongRoPE: positions from long_from_position on rotate with the long frequencies, scaled by the
// attention factor.
TEST(CpuBackendTest, RopeSwitchesToLongFrequenciesAtLongFromPosition) {
  CpuBackend b;
  RopeTable table;
  table.inv_freq = {1.f, 0.1f};
  table.long_inv_freq = {0.5f, 0.01f};
  table.long_from_position = 4;
  table.attention_scaling = 1.25f;
  StepLayout layout;
  layout.token_ids = {0, 0};
  layout.positions = {3, 4};
  ASSERT_TRUE(b.begin_step(layout).ok());
  Tensor q = b.allocate(2, 4, DType::kF32).value(), k = b.allocate(2, 4, DType::kF32).value();
  for (int i = 0; i < 8; ++i) q.as<float>()[i] = k.as<float>()[i] = static_cast<float>(i % 4 + 1);
  ASSERT_TRUE(b.rope(table, 4, q, k).ok());
  const double short0 = 3 * 1.0, long0 = 4 * 0.5;
  EXPECT_NEAR(q.as<float>()[0], 1.25 * (1 * std::cos(short0) - 3 * std::sin(short0)), 1e-5);
  EXPECT_NEAR(q.as<float>()[4], 1.25 * (1 * std::cos(long0) - 3 * std::sin(long0)), 1e-5);
  EXPECT_NEAR(k.as<float>()[7], 1.25 * (4 * std::cos(4 * 0.01) + 2 * std::sin(4 * 0.01)), 1e-5);
}

}  // namespace
}  // namespace quilt::engine
