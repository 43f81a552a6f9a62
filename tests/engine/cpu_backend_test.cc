// CpuBackend ops against direct dense formulas: paged attention with GQA and chunked prefill,
// RMSNorm, RoPE, matmul.
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

// Two sequences with scattered blocks: one a prefill chunk after 5 cached tokens, one a decode.
TEST(CpuBackendTest, PagedAttentionEqualsDenseCausalAttentionWithGqa) {
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
  ASSERT_TRUE(b.attention(0, q, heads, out).ok());

  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto& ls = step.sequences[s];
    for (int i = 0; i < ls.q_len; ++i) {
      const int row = ls.q_start + i, visible = ls.ctx_len - ls.q_len + i + 1;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / (heads / kv_heads);
        std::vector<double> w(visible);
        double mx = -1e30, sum = 0;
        for (int p = 0; p < visible; ++p) {
          double d = 0;
          for (int e = 0; e < hd; ++e) d += q.as<float>()[row * heads * hd + h * hd + e] * ks[s].as<float>()[p * kv_dim + kvh * hd + e];
          w[p] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, w[p]);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int e = 0; e < hd; ++e) {
          double ref = 0;
          for (int p = 0; p < visible; ++p) ref += w[p] / sum * vs[s].as<float>()[p * kv_dim + kvh * hd + e];
          EXPECT_NEAR(out.as<float>()[row * heads * hd + h * hd + e], ref, 1e-5) << "seq " << s << " row " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace quilt::engine
