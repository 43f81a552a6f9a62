// Backend consistency in the manner of llama.cpp's test-backend-ops: every Backend op on fresh
// random inputs, the CUDA backend against the CPU reference, with a tolerance per op. Inputs are
// bf16-exact, so both backends start from the same numbers and only the CUDA side's bf16
// storage and float32 (not double) arithmetic separate them. Runs on a GPU and in the simulator.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>

#include "engine/backend/backend.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/model/rope.h"
#include "tests/engine/backend_test_util.h"

namespace quilt::engine {
namespace {

using quilt::testing::download;
using quilt::testing::float_view;
using quilt::testing::random_values;
using quilt::testing::relative_error;

// bf16 keeps 8 significant bits: one rounding of an O(1) result is ~2e-3 relative (fp16, with 11,
// is 8x closer; both are held to the bf16 bound).
constexpr double kBf16Tolerance = 1e-2;
// v is float32 on both sides, from the same bf16 x and A: only the summation order differs.
constexpr double kFloatTolerance = 1e-5;

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const Status s_ = (expr);                                \
    ASSERT_TRUE(s_.ok()) << #expr << ": " << s_.to_string(); \
  } while (0)

struct Pair {
  Tensor cpu, cuda;
};

// One CUDA-side sequence: `history` positions cached by earlier steps, then `q_len` this step.
struct SeqSpec {
  int32_t history;
  int32_t q_len;
};

// Parameter: the cuda backend's storage dtype (fp16, the default, and bf16).
class BackendConsistencyTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    auto b = make_backend("cuda", GetParam());
#ifdef QUILT_CUDA_SIM
    ASSERT_TRUE(b.ok()) << "the simulator must provide the cuda backend: "
                        << b.status().to_string();
#else
    if (!b.ok()) GTEST_SKIP() << b.status().to_string();
#endif
    cuda_ = std::move(b).value();
    ASSERT_EQ(cuda_->compute_dtype(), GetParam());
  }

  Pair input(int64_t rows, int64_t cols, float sigma = 1.0f) {
    const std::vector<float> v = random_values(static_cast<size_t>(rows * cols), rng_, sigma);
    return {cpu_.load_weight(float_view(v, rows, cols), rows, cols).value(),
            cuda_->load_weight(float_view(v, rows, cols), rows, cols).value()};
  }
  // cuda_dtype: float32, or (by default) the backend's own 16-bit dtype.
  Pair output(int64_t rows, int64_t cols, std::optional<DType> cuda_dtype = std::nullopt) {
    return {cpu_.allocate(rows, cols, DType::kF32).value(),
            cuda_->allocate(rows, cols, cuda_dtype.value_or(cuda_->compute_dtype())).value()};
  }
  // CUDA's result against the CPU's, logged for the record.
  double compare(const Pair& p, const char* op) {
    const double err = relative_error(download(*cuda_, p.cuda), download(cpu_, p.cpu));
    std::printf("[ consistency ] %-28s |d|/|ref| = %.3g\n", op, err);
    RecordProperty(op, std::to_string(err));
    return err;
  }

  // A step over `specs` whose sequences own shuffled KV blocks; history = false lays out the
  // tokens that earlier steps would have cached instead of this step's.
  StepLayout layout(const std::vector<SeqSpec>& specs, bool history, int32_t vocab = 512) {
    StepLayout l;
    std::uniform_int_distribution<int32_t> token(0, vocab - 1);
    int32_t next_block = 0;
    for (const SeqSpec& s : specs) {
      const int32_t ctx = s.history + s.q_len;
      const int32_t first = history ? 0 : s.history;
      const int32_t count = history ? s.history : s.q_len;
      StepLayout::Sequence seq;
      seq.q_start = l.num_tokens();
      seq.q_len = count;
      seq.ctx_len = history ? s.history : ctx;
      seq.block_offset = static_cast<int32_t>(l.block_tables.size());
      seq.num_blocks = (ctx + kBlockSize - 1) / kBlockSize;
      for (int32_t b = 0; b < seq.num_blocks; ++b)
        l.block_tables.push_back(block_order_[next_block++]);
      for (int32_t p = first; p < first + count; ++p) {
        l.token_ids.push_back(token(rng_));
        l.positions.push_back(p);
        l.kv_slots.push_back(l.block_tables[seq.block_offset + p / kBlockSize] * kBlockSize +
                             p % kBlockSize);
      }
      if (count > 0) l.logit_rows.push_back(seq.q_start + count - 1);
      l.sequences.push_back(seq);
    }
    return l;
  }

  Status begin_both(const StepLayout& l) {
    QUILT_RETURN_IF_ERROR(cpu_.begin_step(l));
    return cuda_->begin_step(l);
  }

  Status init_kv_both(const KvCacheShape& shape) {
    block_order_.resize(shape.num_blocks);
    std::iota(block_order_.begin(), block_order_.end(), 0);
    std::shuffle(block_order_.begin(), block_order_.end(), rng_);
    QUILT_RETURN_IF_ERROR(cpu_.init_kv_cache(shape));
    return cuda_->init_kv_cache(shape);
  }

  void check_attention(const std::vector<SeqSpec>& specs, const AttentionParams& params,
                       const char* op, float q_sigma = 2.0f);
  void check_lora(int64_t in_dim, const std::vector<int32_t>& projs,
                  const std::vector<int64_t>& out_dims, int32_t rank0, int32_t rank1);

  static constexpr int32_t kBlockSize = 8;
  std::mt19937 rng_{1234};
  CpuBackend cpu_;
  std::unique_ptr<Backend> cuda_;
  std::vector<int32_t> block_order_;
};

TEST_P(BackendConsistencyTest, Matmul16BitAndFloat32Outputs) {
  Pair x = input(37, 96), w = input(80, 96, 0.1f);
  Pair y = output(37, 80), logits = output(37, 80, DType::kF32);
  for (Backend* b : {static_cast<Backend*>(&cpu_), cuda_.get()}) {
    const bool is_cpu = b == &cpu_;
    ASSERT_OK(b->matmul(is_cpu ? x.cpu : x.cuda, is_cpu ? w.cpu : w.cuda, is_cpu ? y.cpu : y.cuda));
    ASSERT_OK(b->matmul(is_cpu ? x.cpu : x.cuda, is_cpu ? w.cpu : w.cuda,
                        is_cpu ? logits.cpu : logits.cuda));
  }
  EXPECT_LT(compare(y, "matmul (16-bit out)"), kBf16Tolerance);
  EXPECT_LT(compare(logits, "matmul (f32 out)"), 1e-5);  // no rounding after the float sum

  Pair h = input(37, 80);  // the residual stream: h += x · wᵀ in the GEMM's epilogue
  ASSERT_OK(cpu_.matmul_add(x.cpu, w.cpu, h.cpu));
  ASSERT_OK(cuda_->matmul_add(x.cuda, w.cuda, h.cuda));
  EXPECT_LT(compare(h, "matmul_add"), kBf16Tolerance);
}

TEST_P(BackendConsistencyTest, RmsNormAddSiluMul) {
  Pair x = input(19, 96), w = input(1, 96), out = output(19, 96);
  ASSERT_OK(cpu_.rms_norm(x.cpu, w.cpu, 1e-5f, out.cpu));
  ASSERT_OK(cuda_->rms_norm(x.cuda, w.cuda, 1e-5f, out.cuda));
  EXPECT_LT(compare(out, "rms_norm"), kBf16Tolerance);

  Pair acc = input(19, 96), d = input(19, 96);
  ASSERT_OK(cpu_.add(acc.cpu, d.cpu));
  ASSERT_OK(cuda_->add(acc.cuda, d.cuda));
  EXPECT_LT(compare(acc, "add"), kBf16Tolerance);

  Pair gate = input(19, 176, 2.0f), up = input(19, 176), act = output(19, 176);
  ASSERT_OK(cpu_.silu_mul(gate.cpu, up.cpu, act.cpu));
  ASSERT_OK(cuda_->silu_mul(gate.cuda, up.cuda, act.cuda));
  EXPECT_LT(compare(act, "silu_mul"), kBf16Tolerance);

  // The model's case: gate and up are the two halves of one fused gate/up row.
  Pair gate_up = input(19, 2 * 176, 2.0f), fused_act = output(19, 176);
  ASSERT_OK(cpu_.silu_mul(gate_up.cpu.columns(0, 176), gate_up.cpu.columns(176, 176),
                          fused_act.cpu));
  ASSERT_OK(cuda_->silu_mul(gate_up.cuda.columns(0, 176), gate_up.cuda.columns(176, 176),
                            fused_act.cuda));
  EXPECT_LT(compare(fused_act, "silu_mul (fused gate|up)"), kBf16Tolerance);
}

// The newer architectures' pointwise ops: Qwen2's q/k/v bias, Qwen3/Gemma 3's per-head q/k norms
// on the columns of one fused q | k | v row (v untouched), Gemma's GeGLU, embedding scale and
// final logit soft-capping.
TEST_P(BackendConsistencyTest, AddBiasRmsNormHeadsGeluTanhMulScaleSoftcap) {
  Pair y = input(19, 160), bias = input(1, 160);
  ASSERT_OK(cpu_.add_bias(y.cpu, bias.cpu));
  ASSERT_OK(cuda_->add_bias(y.cuda, bias.cuda));
  EXPECT_LT(compare(y, "add_bias"), kBf16Tolerance);

  constexpr int64_t kHd = 32, kQ = 8 * kHd, kKv = 2 * kHd;
  Pair qkv = input(19, kQ + 2 * kKv, 3.0f), q_norm = input(1, kHd), k_norm = input(1, kHd);
  const std::vector<float> before = download(*cuda_, qkv.cuda);
  for (Backend* b : {static_cast<Backend*>(&cpu_), cuda_.get()}) {
    const bool is_cpu = b == &cpu_;
    const Tensor& t = is_cpu ? qkv.cpu : qkv.cuda;
    Tensor q = t.columns(0, kQ), k = t.columns(kQ, kKv);
    ASSERT_OK(b->rms_norm_heads(q, is_cpu ? q_norm.cpu : q_norm.cuda, kHd, 1e-6f));
    ASSERT_OK(b->rms_norm_heads(k, is_cpu ? k_norm.cpu : k_norm.cuda, kHd, 1e-6f));
  }
  EXPECT_LT(compare(qkv, "rms_norm_heads (fused q|k|v)"), kBf16Tolerance);
  const std::vector<float> after = download(*cuda_, qkv.cuda);
  for (int64_t r = 0; r < 19; ++r) {
    for (int64_t c = kQ + kKv; c < kQ + 2 * kKv; ++c) {
      ASSERT_EQ(after[r * (kQ + 2 * kKv) + c], before[r * (kQ + 2 * kKv) + c])
          << "rms_norm_heads wrote into v";
    }
  }
  Pair heads256 = input(5, 2 * 256), norm256 = input(1, 256);  // Gemma 3's head_dim
  ASSERT_OK(cpu_.rms_norm_heads(heads256.cpu, norm256.cpu, 256, 1e-6f));
  ASSERT_OK(cuda_->rms_norm_heads(heads256.cuda, norm256.cuda, 256, 1e-6f));
  EXPECT_LT(compare(heads256, "rms_norm_heads (head_dim 256)"), kBf16Tolerance);

  Pair gate = input(19, 176, 2.0f), up = input(19, 176), act = output(19, 176);
  ASSERT_OK(cpu_.gelu_tanh_mul(gate.cpu, up.cpu, act.cpu));
  ASSERT_OK(cuda_->gelu_tanh_mul(gate.cuda, up.cuda, act.cuda));
  EXPECT_LT(compare(act, "gelu_tanh_mul"), kBf16Tolerance);
  Pair gate_up = input(19, 2 * 176, 2.0f), fused_act = output(19, 176);
  ASSERT_OK(cpu_.gelu_tanh_mul(gate_up.cpu.columns(0, 176), gate_up.cpu.columns(176, 176),
                               fused_act.cpu));
  ASSERT_OK(cuda_->gelu_tanh_mul(gate_up.cuda.columns(0, 176), gate_up.cuda.columns(176, 176),
                                 fused_act.cuda));
  EXPECT_LT(compare(fused_act, "gelu_tanh_mul (fused gate|up)"), kBf16Tolerance);

  Pair h = input(19, 96);
  ASSERT_OK(cpu_.scale(h.cpu, 11.3137f));  // √128
  ASSERT_OK(cuda_->scale(h.cuda, 11.3137f));
  EXPECT_LT(compare(h, "scale (16-bit)"), kBf16Tolerance);

  // float32 logits on both sides (uploaded as they are): scale and softcap round nothing.
  std::vector<float> values = random_values(7 * 300, rng_, 40.0f);
  Pair logits{cpu_.load_weight(float_view(values, 7, 300), 7, 300).value(),
              cuda_->allocate(7, 300, DType::kF32).value()};
  ASSERT_EQ(cudaMemcpy(logits.cuda.data, values.data(), values.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_OK(cpu_.scale(logits.cpu, 0.75f));
  ASSERT_OK(cuda_->scale(logits.cuda, 0.75f));
  EXPECT_LT(compare(logits, "scale (f32)"), kFloatTolerance);
  ASSERT_OK(cpu_.softcap(logits.cpu, 30.f));
  ASSERT_OK(cuda_->softcap(logits.cuda, 30.f));
  EXPECT_LT(compare(logits, "softcap (f32 logits)"), kFloatTolerance);
  const std::vector<float> capped = download(*cuda_, logits.cuda);
  EXPECT_LE(*std::max_element(capped.begin(), capped.end()), 30.f);
  EXPECT_GT(*std::max_element(capped.begin(), capped.end()), 25.f);  // the cap really bent them
}

TEST_P(BackendConsistencyTest, EmbeddingAndGatherRowsCopyExactly) {
  ASSERT_OK(init_kv_both({1, 16, kBlockSize, 2, 16}));
  const StepLayout l = layout({{0, 5}, {3, 1}, {0, 9}}, false, 512);
  ASSERT_OK(begin_both(l));
  Pair table = input(512, 64), h = output(l.num_tokens(), 64);
  ASSERT_OK(cpu_.embedding(table.cpu, h.cpu));
  ASSERT_OK(cuda_->embedding(table.cuda, h.cuda));
  EXPECT_EQ(compare(h, "embedding"), 0.0);

  Pair last = output(3, 64);  // the step's own logit rows (uploaded with the step on cuda)
  ASSERT_OK(cpu_.gather_rows(h.cpu, l.logit_rows, last.cpu));
  ASSERT_OK(cuda_->gather_rows(h.cuda, l.logit_rows, last.cuda));
  EXPECT_EQ(compare(last, "gather_rows (logit rows)"), 0.0);

  const std::vector<int32_t> rows = {14, 0, 7, 7, 2};  // any rows, repeats allowed
  Pair picked = output(5, 64);
  ASSERT_OK(cpu_.gather_rows(h.cpu, rows, picked.cpu));
  ASSERT_OK(cuda_->gather_rows(h.cuda, rows, picked.cuda));
  EXPECT_EQ(compare(picked, "gather_rows (any rows)"), 0.0);
}

TEST_P(BackendConsistencyTest, RopeAtFarPositions) {
  ModelConfig cfg;
  cfg.head_dim = 32;
  cfg.rope.theta = 500000.0;
  cfg.torch_dtype = "bfloat16";
  const RopeTable table = make_rope_table(cfg);
  ASSERT_OK(init_kv_both({1, 128, kBlockSize, 2, 32}));
  // Far positions: the angle's float32 rounding matters there, and both sides must share it.
  const StepLayout l = layout({{400, 7}, {0, 4}, {62 * kBlockSize - 1, 1}}, false);
  ASSERT_OK(begin_both(l));
  Pair q = input(l.num_tokens(), 8 * 32), k = input(l.num_tokens(), 2 * 32);
  ASSERT_OK(cpu_.rope(table, 32, q.cpu, k.cpu));
  ASSERT_OK(cuda_->rope(table, 32, q.cuda, k.cuda));
  EXPECT_LT(compare(q, "rope q"), kBf16Tolerance);
  EXPECT_LT(compare(k, "rope k"), kBf16Tolerance);

  // The model's case: q and k are columns of one fused q | k | v row; v must stay untouched.
  Pair qkv = input(l.num_tokens(), (8 + 2 + 2) * 32);
  const std::vector<float> before = download(cpu_, qkv.cpu);
  for (Backend* b : {static_cast<Backend*>(&cpu_), cuda_.get()}) {
    const Tensor& t = b == &cpu_ ? qkv.cpu : qkv.cuda;
    Tensor qv = t.columns(0, 8 * 32), kv = t.columns(8 * 32, 2 * 32);
    ASSERT_OK(b->rope(table, 32, qv, kv));
  }
  EXPECT_LT(compare(qkv, "rope (fused q|k|v)"), kBf16Tolerance);
  const std::vector<float> after = download(*cuda_, qkv.cuda);
  for (int64_t r = 0; r < qkv.cuda.rows; ++r) {
    for (int64_t c = 10 * 32; c < 12 * 32; ++c) {
      ASSERT_EQ(after[r * 12 * 32 + c], before[r * 12 * 32 + c]) << "rope wrote into v";
    }
  }
}

// LongRoPE (Phi-3): positions from long_from_position on rotate with long_inv_freq, cos and sin
// scaled by attention_scaling; and Gemma 3's two tables (local and global bases) alternating
// layer by layer, as the model passes them.
TEST_P(BackendConsistencyTest, RopeLongRopeAndPerLayerTables) {
  ModelConfig cfg;
  cfg.head_dim = 32;
  cfg.rope.theta = 10000.0;
  cfg.torch_dtype = "bfloat16";
  RopeTable longrope = make_rope_table(cfg);
  longrope.long_inv_freq = longrope.inv_freq;
  for (size_t i = 0; i < longrope.long_inv_freq.size(); ++i) {
    longrope.long_inv_freq[i] /= 1.0f + 0.5f * static_cast<float>(i);  // a factor per pair
  }
  longrope.long_from_position = 100;
  longrope.attention_scaling = 1.1902f;
  cfg.rope.theta = 1000000.0;
  const RopeTable global = make_rope_table(cfg);
  ASSERT_OK(init_kv_both({1, 80, kBlockSize, 2, 32}));
  // Positions on both sides of 100, one token exactly at it.
  const StepLayout l = layout({{90, 12}, {0, 4}, {300, 1}, {100, 1}}, false);
  ASSERT_OK(begin_both(l));
  Pair q = input(l.num_tokens(), 8 * 32), k = input(l.num_tokens(), 2 * 32);
  const RopeTable* const tables[] = {&longrope, &global, &longrope};
  for (const RopeTable* table : tables) {
    ASSERT_OK(cpu_.rope(*table, 32, q.cpu, k.cpu));
    ASSERT_OK(cuda_->rope(*table, 32, q.cuda, k.cuda));
  }
  EXPECT_LT(compare(q, "rope longrope|global|longrope q"), kBf16Tolerance);
  EXPECT_LT(compare(k, "rope longrope|global|longrope k"), kBf16Tolerance);
}

// Attention of one step over `specs` (earlier steps' K and V cached first), q, k and v as the
// model has them: columns of one fused q | k | v row. 8 query heads on 2 KV heads (GQA).
void BackendConsistencyTest::check_attention(const std::vector<SeqSpec>& specs,
                                             const AttentionParams& params, const char* op,
                                             float q_sigma) {
  constexpr int32_t kHeads = 8, kKvHeads = 2, kHeadDim = 32, kLayer = 1;
  int32_t blocks = 0;
  for (const SeqSpec& s : specs) blocks += (s.history + s.q_len + kBlockSize - 1) / kBlockSize;
  ASSERT_OK(init_kv_both({2, blocks + 3, kBlockSize, kKvHeads, kHeadDim}));
  const StepLayout past = layout(specs, true);
  if (past.num_tokens() > 0) {
    ASSERT_OK(begin_both(past));
    Pair pk = input(past.num_tokens(), kKvHeads * kHeadDim),
         pv = input(past.num_tokens(), kKvHeads * kHeadDim);
    ASSERT_OK(cpu_.kv_store(kLayer, pk.cpu, pv.cpu));
    ASSERT_OK(cuda_->kv_store(kLayer, pk.cuda, pv.cuda));
  }
  const StepLayout now = layout(specs, false);
  const int64_t n = now.num_tokens();
  ASSERT_OK(begin_both(now));
  constexpr int64_t kQ = kHeads * kHeadDim, kKv = kKvHeads * kHeadDim;
  Pair qkv = input(n, kQ + 2 * kKv, q_sigma), out = output(n, kQ);
  for (Backend* b : {static_cast<Backend*>(&cpu_), cuda_.get()}) {
    const Tensor& t = b == &cpu_ ? qkv.cpu : qkv.cuda;
    ASSERT_OK(b->kv_store(kLayer, t.columns(kQ, kKv), t.columns(kQ + kKv, kKv)));
    ASSERT_OK(b->attention(kLayer, t.columns(0, kQ), kHeads, params,
                           b == &cpu_ ? out.cpu : out.cuda));
  }
  EXPECT_LT(compare(out, op), kBf16Tolerance);
}

// Contexts over many shuffled blocks and past one 128-position chunk, a fresh prefill, a chunked
// prefill over a cached prefix and decodes in one step.
const std::vector<SeqSpec> kMixedStep = {{0, 37}, {20, 13}, {150, 1}, {8, 1}, {0, 1}};

TEST_P(BackendConsistencyTest, PagedAttentionMixedPrefillDecodeGqa) {
  check_attention(kMixedStep, {}, "attention (paged, GQA, mixed)");
}

// Gemma's options one at a time and together: a scale other than 1/√head_dim (query_pre_attn
// scalar), scores soft-capped (q spread wide so that the cap bends them), sliding windows shorter
// than a prefill, than one chunk and than a context.
TEST_P(BackendConsistencyTest, AttentionScaleSoftcapAndSlidingWindow) {
  check_attention(kMixedStep, {0.0625f, 0.f, 0}, "attention scale 1/16");
  check_attention(kMixedStep, {0.f, 5.f, 0}, "attention softcap 5", 4.0f);
  check_attention(kMixedStep, {0.f, 0.f, 16}, "attention window 16");
  check_attention(kMixedStep, {0.f, 0.f, 100}, "attention window 100");
  check_attention(kMixedStep, {0.0625f, 20.f, 9}, "attention scale+softcap+window", 4.0f);
}

// Split-K decode: contexts of thousands of positions, cut into partitions whose softmax
// statistics a second pass merges; decodes next to a short prefill and a chunk over a long
// prefix, with and without a window.
TEST_P(BackendConsistencyTest, SplitKAttentionOverLongContexts) {
  const std::vector<SeqSpec> long_step = {{4000, 1}, {2500, 1}, {0, 3}, {1500, 4}, {700, 1}};
  check_attention(long_step, {}, "attention split-K (4000 ctx)");
  check_attention(long_step, {0.f, 30.f, 0}, "attention split-K softcap");
  check_attention(long_step, {0.f, 0.f, 2000}, "attention split-K window 2000");
  check_attention(long_step, {0.f, 0.f, 300}, "attention window 300 (no split)");
}

// Mixed ranks, a slot with an untargeted projection, tokens without adapter, a segment long
// enough for tensor cores next to short ones, A and Bᵀ spread over shuffled pages: shrink fused
// over `projs` (all reading x [T, in_dim]), then one expand per projection.
void BackendConsistencyTest::check_lora(int64_t in_dim, const std::vector<int32_t>& projs,
                                        const std::vector<int64_t>& out_dims, int32_t rank0,
                                        int32_t rank1) {
  constexpr int32_t kLayers = 2, kSlots = 3;
  constexpr int64_t kPageElems = 64;  // the engine's page: hidden_size of the tiny model
  const int32_t max_rank = std::max(rank0, rank1);
  ASSERT_OK(init_kv_both({1, 32, kBlockSize, 2, 16}));
  const LoraPoolShape shape{1024, kPageElems, kSlots, kLayers};
  ASSERT_OK(cpu_.init_lora_pool(shape));
  ASSERT_OK(cuda_->init_lora_pool(shape));

  std::vector<int32_t> free_pages(shape.num_pages);
  std::iota(free_pages.begin(), free_pages.end(), 0);
  std::shuffle(free_pages.begin(), free_pages.end(), rng_);
  std::vector<int32_t> page_indices;
  std::vector<float> page_data;
  std::vector<kernels::sgmv::LoraModuleRef> modules(kSlots * kLayers * 7, {0, 0.f, 0, 0});
  auto put_matrix = [&](int64_t rank, int64_t dim) {
    const int32_t first = static_cast<int32_t>(page_indices.size());
    const int64_t pages = kernels::sgmv::pages_for_matrix(rank, dim, kPageElems);
    std::vector<float> values = random_values(static_cast<size_t>(rank * dim), rng_, 0.2f);
    values.resize(static_cast<size_t>(pages * kPageElems), 0.f);
    page_data.insert(page_data.end(), values.begin(), values.end());
    for (int64_t i = 0; i < pages; ++i) page_indices.push_back(free_pages[page_indices.size()]);
    return first;
  };
  for (int32_t slot = 0; slot < 2; ++slot) {
    for (int32_t layer = 0; layer < kLayers; ++layer) {
      for (size_t i = 0; i < projs.size(); ++i) {
        // Slot 1 leaves its last projection of layer 1 alone.
        const bool untargeted =
            slot == 1 && layer == 1 && i + 1 == projs.size() && projs.size() > 1;
        const int32_t rank = untargeted ? 0 : (slot == 0 ? rank0 : rank1);
        if (rank == 0) continue;
        const int32_t a = put_matrix(rank, in_dim);
        const int32_t bt = put_matrix(rank, out_dims[i]);
        modules[(slot * kLayers + layer) * 7 + projs[i]] = {rank, 0.5f + slot, a, bt};
      }
    }
  }
  ASSERT_LE(page_indices.size(), static_cast<size_t>(shape.num_pages));
  for (Backend* b : {static_cast<Backend*>(&cpu_), cuda_.get()}) {
    ASSERT_OK(b->write_lora_pages(page_indices, page_data));
    ASSERT_OK(b->write_lora_tables(page_indices, modules));
  }

  // Segments: 20 tokens of slot 1, 4 of slot 0, 6 without adapter, 3 of slot 1.
  StepLayout l = layout({{0, 20}, {0, 4}, {0, 6}, {0, 3}}, false);
  l.segment_starts = {0, 20, 24, 30, 33};
  l.segment_slots = {1, 0, -1, 1};
  for (size_t s = 0; s < l.segment_slots.size(); ++s) {
    for (int32_t t = l.segment_starts[s]; t < l.segment_starts[s + 1]; ++t) {
      l.token_slots.push_back(l.segment_slots[s]);
    }
  }
  l.max_rank = max_rank;
  const int64_t n = l.num_tokens();
  ASSERT_OK(begin_both(l));

  for (int32_t layer = 0; layer < kLayers; ++layer) {
    Pair x = input(n, in_dim);
    std::vector<Pair> v;
    std::vector<Tensor> cpu_v, cuda_v;
    for (size_t i = 0; i < projs.size(); ++i) {
      v.push_back(output(n, max_rank, DType::kF32));
      cpu_v.push_back(v.back().cpu);
      cuda_v.push_back(v.back().cuda);
    }
    ASSERT_OK(cpu_.lora_shrink(x.cpu, layer, projs, cpu_v));
    ASSERT_OK(cuda_->lora_shrink(x.cuda, layer, projs, cuda_v));
    for (size_t i = 0; i < projs.size(); ++i) {
      const std::string op =
          "lora_shrink L" + std::to_string(layer) + " proj " + std::to_string(projs[i]);
      EXPECT_LT(compare(v[i], op.c_str()), kFloatTolerance);
    }
    for (size_t i = 0; i < projs.size(); ++i) {
      Pair y = input(n, out_dims[i]);
      const std::vector<float> before = download(cpu_, y.cpu);
      const ProjectionSlice whole{projs[i], 0, out_dims[i]};
      ASSERT_OK(cpu_.lora_expand({&cpu_v[i], 1}, layer, {&whole, 1}, y.cpu));
      ASSERT_OK(cuda_->lora_expand({&cuda_v[i], 1}, layer, {&whole, 1}, y.cuda));
      const std::string op =
          "lora_expand L" + std::to_string(layer) + " proj " + std::to_string(projs[i]);
      EXPECT_LT(compare(y, op.c_str()), kBf16Tolerance);
      const std::vector<float> after = download(*cuda_, y.cuda);
      for (int64_t e = 24 * out_dims[i]; e < 30 * out_dims[i]; ++e) {  // no adapter: untouched
        ASSERT_EQ(after[e], before[e]) << op << " changed a row without adapter";
      }
    }
    // Fused: every projection into its columns of one row, as the model's q/k/v and gate/up.
    std::vector<ProjectionSlice> slices;
    int64_t width = 0;
    for (size_t i = 0; i < projs.size(); ++i) {
      slices.push_back({projs[i], width, out_dims[i]});
      width += out_dims[i];
    }
    Pair fused = input(n, width);
    const std::vector<float> before = download(cpu_, fused.cpu);
    ASSERT_OK(cpu_.lora_expand(cpu_v, layer, slices, fused.cpu));
    ASSERT_OK(cuda_->lora_expand(cuda_v, layer, slices, fused.cuda));
    const std::string op = "lora_expand L" + std::to_string(layer) + " fused";
    EXPECT_LT(compare(fused, op.c_str()), kBf16Tolerance);
    const std::vector<float> after = download(*cuda_, fused.cuda);
    for (int64_t e = 24 * width; e < 30 * width; ++e) {
      ASSERT_EQ(after[e], before[e]) << op << " changed a row without adapter";
    }
  }
}

TEST_P(BackendConsistencyTest, LoraQkvFusedShrinkAndExpand) {
  check_lora(96, {0, 1, 2}, {128, 32, 32}, 8, 16);
}

// The tiny model's MLP shapes: gate/up fused (64 → 176), down (176 → 64), ranks 4 and 64.
TEST_P(BackendConsistencyTest, LoraGateUpShrinkAndExpand) {
  check_lora(64, {4, 5}, {176, 176}, 4, 16);
}
TEST_P(BackendConsistencyTest, LoraDownShrinkAndExpand) { check_lora(176, {6}, {64}, 64, 16); }

// Device sampling against the CPU sampler on the same float32 logits: every rule, ids equal (greedy
// exactly by construction; sampled ids unless exp's last bit differs, which these rows do not
// hit), log-probabilities within float rounding.
TEST_P(BackendConsistencyTest, SampleMatchesTheCpuSampler) {
  constexpr int64_t kVocab = 1000;  // not a power of two: the sort pads
  std::vector<SampleSpec> specs;
  std::mt19937_64 draws(7);
  for (float t : {0.f, 0.7f, 1.0f, 1.5f}) {
    for (int32_t k : {0, 1, 5, 50}) {
      for (float top_p : {1.f, 0.9f, 0.3f}) {
        SampleSpec s;
        s.temperature = t;
        s.top_k = k;
        s.top_p = top_p;
        s.logprobs = static_cast<int32_t>(specs.size() % 4 == 0 ? 5 : 0);
        s.uniform = t > 0.f ? std::generate_canonical<double, 53>(draws) : 0.0;
        // logit_bias and penalties, folded: added before every rule and the logprobs.
        if (specs.size() % 3 == 1) s.logit_adjust = {{11, 6.f}, {500, -3.f}, {999, 20.f}};
        specs.push_back(s);
      }
    }
  }
  const int64_t rows = static_cast<int64_t>(specs.size());
  std::vector<float> values = random_values(static_cast<size_t>(rows * kVocab), rng_, 3.0f);
  values[5 * kVocab + 17] = values[5 * kVocab + 3] = 40.f;  // a tie: the lower id wins
  Pair logits{cpu_.load_weight(float_view(values, rows, kVocab), rows, kVocab).value(),
              cuda_->allocate(rows, kVocab, DType::kF32).value()};
  ASSERT_EQ(cudaMemcpy(logits.cuda.data, values.data(), values.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  std::vector<SampledToken> cpu_out(specs.size()), cuda_out(specs.size());
  ASSERT_OK(cpu_.sample(logits.cpu, specs, cpu_out));
  ASSERT_OK(cuda_->sample(logits.cuda, specs, cuda_out));
  for (size_t r = 0; r < specs.size(); ++r) {
    const std::string label = "row " + std::to_string(r) + " T=" +
                              std::to_string(specs[r].temperature) + " k=" +
                              std::to_string(specs[r].top_k) + " p=" + std::to_string(specs[r].top_p);
    EXPECT_EQ(cuda_out[r].token, cpu_out[r].token) << label;
    if (specs[r].logprobs == 0) continue;
    EXPECT_NEAR(cuda_out[r].logprob, cpu_out[r].logprob, 1e-5) << label;
    ASSERT_EQ(cuda_out[r].top.size(), cpu_out[r].top.size()) << label;
    for (size_t c = 0; c < cpu_out[r].top.size(); ++c) {
      EXPECT_EQ(cuda_out[r].top[c].first, cpu_out[r].top[c].first) << label;
      EXPECT_NEAR(cuda_out[r].top[c].second, cpu_out[r].top[c].second, 1e-5) << label;
    }
  }
  EXPECT_EQ(cuda_out[5].token, 3);  // greedy row with the tie
  EXPECT_EQ(cuda_out[1].token, 999);  // greedy with the biggest bias (k=1 has no say in greedy)
}

INSTANTIATE_TEST_SUITE_P(Dtypes, BackendConsistencyTest,
                         ::testing::Values(DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(MakeBackendTest, NamesCudaDevicesAndRejectsBadOnes) {
  EXPECT_FALSE(make_backend("cuda:x").ok());
  EXPECT_FALSE(make_backend("cuda:").ok());
  EXPECT_FALSE(make_backend("cuda:4096").ok());
  auto b = make_backend("cuda:0");
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ((*b)->name(), "cuda:0");
}

}  // namespace
}  // namespace quilt::engine
