// Where the CUDA forward pass loses precision: the tiny model's forward on the cpu backend (float32,
// the reference) and on the cuda backend, op by op, through a Backend decorator that records every
// op's output. Prints each op's error against the CPU and the first-step logits' error against
// expected.json, so a regression in conformance can be traced to the op that causes it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "adapters/peft_adapter.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/lora/adapter_slots.h"
#include "engine/model/llama_model.h"
#include "engine/weights/safetensors.h"
#include "tests/engine/backend_test_util.h"
#include "tests/engine/engine_harness.h"

namespace quilt::engine {
namespace {

using quilt::testing::download;
using quilt::testing::relative_error;
using quilt::testing::source_path;

// One op's output, as the decorator saw it right after the op.
struct Tap {
  std::string op;
  std::vector<float> values;
};

// Forwards every op to `inner` and downloads what each op wrote.
class TapBackend final : public Backend {
 public:
  explicit TapBackend(Backend& inner) : inner_(inner) {}
  std::vector<Tap> taps;

  std::string name() const override { return inner_.name(); }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  Result<Tensor> allocate(int64_t rows, int64_t cols, DType dtype) override {
    return inner_.allocate(rows, cols, dtype);
  }
  Result<Tensor> load_weight(const TensorView& src, int64_t rows, int64_t cols) override {
    return inner_.load_weight(src, rows, cols);
  }
  Status download(const Tensor& src, std::span<float> dst) override {
    return inner_.download(src, dst);
  }
  Status init_kv_cache(const KvCacheShape& shape) override { return inner_.init_kv_cache(shape); }
  Status init_lora_pool(const LoraPoolShape& shape) override {
    return inner_.init_lora_pool(shape);
  }
  Status write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) override {
    return inner_.write_lora_pages(pages, data);
  }
  Status write_lora_tables(std::span<const int32_t> page_indices,
                           std::span<const kernels::sgmv::LoraModuleRef> modules) override {
    return inner_.write_lora_tables(page_indices, modules);
  }
  Status begin_step(const StepLayout& layout) override { return inner_.begin_step(layout); }

  Status embedding(const Tensor& table, Tensor& out) override {
    return record("embedding", inner_.embedding(table, out), out);
  }
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    return record("rms_norm", inner_.rms_norm(x, weight, eps, out), out);
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor& out) override {
    return record("matmul " + std::to_string(w.rows) + "x" + std::to_string(w.cols),
                  inner_.matmul(x, w, out), out);
  }
  Status matmul_add(const Tensor& x, const Tensor& w, Tensor& out) override {
    return record("matmul_add " + std::to_string(w.rows) + "x" + std::to_string(w.cols),
                  inner_.matmul_add(x, w, out), out);
  }
  Status add(Tensor& acc, const Tensor& x) override {
    return record("add", inner_.add(acc, x), acc);
  }
  Status rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) override {
    const Status s = inner_.rope(table, head_dim, q, k);
    QUILT_RETURN_IF_ERROR(record("rope q", s, q));
    return record("rope k", s, k);
  }
  Status kv_store(int32_t layer, const Tensor& k, const Tensor& v) override {
    return inner_.kv_store(layer, k, v);
  }
  Status attention(int32_t layer, const Tensor& q, int64_t num_heads,
                   const AttentionParams& params, Tensor& out) override {
    return record("attention", inner_.attention(layer, q, num_heads, params, out), out);
  }
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    return record("silu_mul", inner_.silu_mul(gate, up, out), out);
  }
  Status gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    return record("gelu_tanh_mul", inner_.gelu_tanh_mul(gate, up, out), out);
  }
  Status add_bias(Tensor& y, const Tensor& bias) override {
    return record("add_bias", inner_.add_bias(y, bias), y);
  }
  Status rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) override {
    return record("rms_norm_heads", inner_.rms_norm_heads(x, weight, head_dim, eps), x);
  }
  Status scale(Tensor& x, float s) override { return record("scale", inner_.scale(x, s), x); }
  Status softcap(Tensor& x, float cap) override {
    return record("softcap", inner_.softcap(x, cap), x);
  }
  Status gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override {
    return record("gather_rows", inner_.gather_rows(x, rows, out), out);
  }
  Status sample(const Tensor& logits, std::span<const SampleSpec> rows,
                std::span<SampledToken> out) override {
    return inner_.sample(logits, rows, out);
  }
  Status lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                     std::span<Tensor> v) override {
    const Status s = inner_.lora_shrink(x, layer, projs, v);
    for (size_t i = 0; i < v.size(); ++i) {
      QUILT_RETURN_IF_ERROR(record("lora_shrink " + std::string(projection_name(
                                                        static_cast<Projection>(projs[i]))),
                                   s, v[i]));
    }
    return s;
  }
  Status lora_expand(std::span<const Tensor> v, int32_t layer,
                     std::span<const ProjectionSlice> slices, Tensor& y) override {
    std::string op = "lora_expand";
    for (const ProjectionSlice& s : slices) {
      op += std::string(" ") + projection_name(static_cast<Projection>(s.proj));
    }
    return record(op, inner_.lora_expand(v, layer, slices, y), y);
  }

 private:
  Status record(std::string op, Status s, const Tensor& out) {
    if (!s.ok()) return s;
    taps.push_back({std::move(op), quilt::testing::download(inner_, out)});
    return s;
  }
  Backend& inner_;
};

// One backend with the model and one adapter resident, running a single prefill step.
struct Runner {
  std::unique_ptr<Backend> owned;
  std::unique_ptr<TapBackend> tap;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<AdapterSlots> slots;
};

Runner make_runner(std::unique_ptr<Backend> backend, const ModelConfig& cfg,
                   const TensorStore& store) {
  Runner r;
  r.owned = std::move(backend);
  r.tap = std::make_unique<TapBackend>(*r.owned);
  r.model = LlamaModel::load(cfg, store, *r.tap, 512, 64).value();
  const KvCacheShape kv{static_cast<int32_t>(cfg.num_layers), 64, 16,
                        static_cast<int32_t>(cfg.num_kv_heads), static_cast<int32_t>(cfg.head_dim)};
  EXPECT_TRUE(r.tap->init_kv_cache(kv).ok());
  LoraPoolShape pool;
  pool.page_elems = cfg.hidden_size;
  pool.num_pages = 4096;
  pool.max_slots = 4;
  pool.num_layers = static_cast<int32_t>(cfg.num_layers);
  r.slots = AdapterSlots::create(*r.tap, cfg, pool).value();
  return r;
}

// The whole prompt as one prefill step, every token on `slot` (-1: base), logits of the last.
StepLayout prefill_layout(const std::vector<int32_t>& prompt, int32_t slot, int32_t rank) {
  StepLayout l;
  const int32_t n = static_cast<int32_t>(prompt.size());
  l.token_ids = prompt;
  for (int32_t i = 0; i < n; ++i) {
    l.positions.push_back(i);
    l.kv_slots.push_back(i);
    l.token_slots.push_back(slot);
  }
  const int32_t blocks = (n + 15) / 16;
  for (int32_t b = 0; b < blocks; ++b) l.block_tables.push_back(b);
  l.sequences.push_back({0, n, n, 0, blocks});
  l.logit_rows = {n - 1};
  l.segment_starts = {0, n};
  l.segment_slots = {slot};
  l.max_rank = slot >= 0 ? rank : 0;
  return l;
}

double logits_error(const std::vector<float>& got, const nlohmann::json& ref_json) {
  const auto ref = ref_json.get<std::vector<double>>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

TEST(ForwardPrecisionCudaTest, OpByOpAgainstTheCpuOnTheWorstConformanceCases) {
  auto cuda_backend = make_backend("cuda");
#ifdef QUILT_CUDA_SIM
  ASSERT_TRUE(cuda_backend.ok()) << cuda_backend.status().to_string();
#else
  if (!cuda_backend.ok()) GTEST_SKIP() << cuda_backend.status().to_string();
#endif
  const std::string model_dir = source_path("examples/models/tiny-llama");
  const ModelConfig cfg = load_model_config(model_dir).value();
  auto store = TensorStore::open_dir(model_dir).value();
  Runner cpu = make_runner(std::make_unique<CpuBackend>(), cfg, *store);
  Runner gpu = make_runner(std::move(cuda_backend).value(), cfg, *store);

  const nlohmann::json expected = quilt::testing::load_expected();
  const auto& cases = expected["cases"];
  // The all-module adapters on a short and the long prompt, and the base model for scale.
  const char* env = std::getenv("QUILT_PRECISION_CASES");
  std::vector<size_t> picks;
  if (env != nullptr) {
    for (const char* p = env; *p != '\0';) {
      char* end = nullptr;
      picks.push_back(std::strtoul(p, &end, 10));
      p = *end == ',' ? end + 1 : end;
    }
  } else {
    picks = {0, 2, cases.size() - 1};
  }
  for (size_t i : picks) {
    const auto& c = cases[i];
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    int32_t cpu_slot = -1, gpu_slot = -1, rank = 0;
    if (!c["adapter"].is_null()) {
      auto w = adapters::load_peft_adapter_dir(
          source_path("examples/adapters/" + c["adapter"].get<std::string>()), cfg);
      ASSERT_TRUE(w.ok()) << w.status().to_string();
      std::shared_ptr<const LoraWeights> weights = *w;
      cpu_slot = cpu.slots->acquire(weights).value();
      gpu_slot = gpu.slots->acquire(weights).value();
      rank = cpu.slots->rank_of(cpu_slot);
    }
    const StepLayout cl = prefill_layout(prompt, cpu_slot, rank);
    const StepLayout gl = prefill_layout(prompt, gpu_slot, rank);
    std::vector<float> cpu_logits, gpu_logits;
    cpu.tap->taps.clear();
    gpu.tap->taps.clear();
    ASSERT_TRUE(cpu.tap->begin_step(cl).ok());
    ASSERT_TRUE(cpu.model->forward(cl, cpu_logits).ok());
    ASSERT_TRUE(gpu.tap->begin_step(gl).ok());
    ASSERT_TRUE(gpu.model->forward(gl, gpu_logits).ok());
    if (cpu_slot >= 0) {
      cpu.slots->release(cpu_slot);
      gpu.slots->release(gpu_slot);
    }

    std::printf("[ precision ] case %zu adapter %s, %zu prompt tokens\n", i,
                c["adapter"].dump().c_str(), prompt.size());
    ASSERT_EQ(cpu.tap->taps.size(), gpu.tap->taps.size());
    for (size_t t = 0; t < cpu.tap->taps.size(); ++t) {
      const Tap& a = cpu.tap->taps[t];
      const Tap& b = gpu.tap->taps[t];
      ASSERT_EQ(a.op, b.op);
      double norm = 0;
      for (float v : a.values) norm += static_cast<double>(v) * v;
      std::printf("[ precision ]   %3zu %-22s |ref|/sqrt(n) = %-9.3g |d|/|ref| = %.3g\n", t,
                  a.op.c_str(), std::sqrt(norm / a.values.size()),
                  relative_error(b.values, a.values));
    }
    const double cpu_err = logits_error(cpu_logits, c["first_logits"]);
    const double gpu_err = logits_error(gpu_logits, c["first_logits"]);
    std::printf("[ precision ]   logits vs reference: cpu %.3g, cuda %.3g\n", cpu_err, gpu_err);
    EXPECT_LT(cpu_err, 1e-4);
    EXPECT_LT(gpu_err, 2e-2) << "case " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Precision budget, on the CPU: which of the CUDA path's 16-bit roundings the conformance bounds
// can afford. A decorator rounds chosen op outputs to bf16 (or fp16) on the float32 backend; each
// scenario runs every expected.json case teacher-forced (the reference's greedy ids fed back) and
// reports the worst first-step logit error and the margin-safe greedy ids that leave the reference.
// Disabled (a study, not a check); run with --gtest_also_run_disabled_tests, and
// QUILT_BUDGET_VERBOSE=1 for every case above 1e-2. What it showed (December 2026): the fixture's
// all-module adapters make some cases ill-conditioned (case 27: bf16 K in the cache alone, a
// 2e-3 relative change, moves its logits by 3.6e-2; bf16 GEMM inputs alone by 2.2e-2 on case 7),
// so no placement of float32 around bf16 GEMMs and a bf16 cache meets 2e-2, while fp16 storage
// everywhere does (worst 1.5e-2, every margin-safe id kept).
namespace budget {

enum Point : uint32_t {
  kGemmIn = 1 << 0,    // rms_norm, attention and silu_mul outputs (the inputs of bf16 GEMMs)
  kQkv = 1 << 1,       // q/k/v projection outputs, their LoRA sums and RoPE
  kKvCache = 1 << 2,   // K and V as stored in the cache
  kProjOut = 1 << 3,   // gate/up projection outputs and their LoRA sums
  kResidual = 1 << 4,  // the residual stream h (o and down add into it)
  kLoraW = 1 << 5,     // adapter weights in the page pool
  kKOnly = 1 << 6,     // with kKvCache: round K only
  kVOnly = 1 << 7,     // with kKvCache: round V only
  kFp16 = 1 << 8,      // round to float16 instead of bf16
};

class RoundingBackend final : public Backend {
 public:
  RoundingBackend(Backend& inner, uint32_t points, bool fp16 = false)
      : inner_(inner), points_(points), fp16_(fp16) {}
  std::string name() const override { return inner_.name(); }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  Result<Tensor> allocate(int64_t rows, int64_t cols, DType dtype) override {
    return inner_.allocate(rows, cols, dtype);
  }
  Result<Tensor> load_weight(const TensorView& src, int64_t rows, int64_t cols) override {
    // Widened first: the cpu backend keeps bf16 matrices in bf16, which round() cannot rewrite.
    const std::vector<float> widened = to_float32(src);
    TensorView f32 = src;
    f32.dtype = DType::kF32;
    f32.data = reinterpret_cast<const std::byte*>(widened.data());
    QUILT_ASSIGN_OR_RETURN(Tensor t, inner_.load_weight(f32, rows, cols));
    round(t);  // bf16 weights on the device
    return t;
  }
  Status download(const Tensor& src, std::span<float> dst) override {
    return inner_.download(src, dst);
  }
  Status init_kv_cache(const KvCacheShape& shape) override { return inner_.init_kv_cache(shape); }
  Status init_lora_pool(const LoraPoolShape& shape) override {
    return inner_.init_lora_pool(shape);
  }
  Status write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) override {
    if (!(points_ & kLoraW)) return inner_.write_lora_pages(pages, data);
    std::vector<float> r(data.begin(), data.end());
    for (float& v : r) v = rnd(v);
    return inner_.write_lora_pages(pages, r);
  }
  Status write_lora_tables(std::span<const int32_t> page_indices,
                           std::span<const kernels::sgmv::LoraModuleRef> modules) override {
    return inner_.write_lora_tables(page_indices, modules);
  }
  Status begin_step(const StepLayout& layout) override {
    matmuls_ = 0;
    return inner_.begin_step(layout);
  }
  Status embedding(const Tensor& table, Tensor& out) override {
    return inner_.embedding(table, out);
  }
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    return after(inner_.rms_norm(x, weight, eps, out), kGemmIn, out);
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor& out) override {
    // Per layer: q/k/v, then gate/up (o and down add into h: matmul_add); the lm_head's output
    // stays float32.
    const int phase = matmuls_++ % 2;
    if (w.rows == 512 && out.rows <= 4) return inner_.matmul(x, w, out);
    return after(inner_.matmul(x, w, out), phase == 0 ? kQkv : kProjOut, out);
  }
  Status matmul_add(const Tensor& x, const Tensor& w, Tensor& out) override {
    return after(inner_.matmul_add(x, w, out), kResidual, out);
  }
  Status add(Tensor& acc, const Tensor& x) override {
    return after(inner_.add(acc, x), kResidual, acc);
  }
  Status rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) override {
    const Status s = inner_.rope(table, head_dim, q, k);
    if (Status r = after(s, kQkv, q); !r.ok()) return r;
    return after(s, kQkv, k);
  }
  Status kv_store(int32_t layer, const Tensor& k, const Tensor& v) override {
    if (!(points_ & kKvCache)) return inner_.kv_store(layer, k, v);
    std::vector<float> kr(k.as<float>(), k.as<float>() + k.num_elements());
    std::vector<float> vr(v.as<float>(), v.as<float>() + v.num_elements());
    if (points_ & kKOnly) {
      for (float& x : kr) x = rnd(x);
    } else if (points_ & kVOnly) {
      for (float& x : vr) x = rnd(x);
    } else {
      for (float& x : kr) x = rnd(x);
      for (float& x : vr) x = rnd(x);
    }
    Tensor kt = k, vt = v;
    kt.data = kr.data();
    vt.data = vr.data();
    return inner_.kv_store(layer, kt, vt);
  }
  Status attention(int32_t layer, const Tensor& q, int64_t num_heads,
                   const AttentionParams& params, Tensor& out) override {
    return after(inner_.attention(layer, q, num_heads, params, out), kGemmIn, out);
  }
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    return after(inner_.silu_mul(gate, up, out), kGemmIn, out);
  }
  Status gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    return after(inner_.gelu_tanh_mul(gate, up, out), kGemmIn, out);
  }
  // The Llama model this study runs never calls these; they pass through unrounded.
  Status add_bias(Tensor& y, const Tensor& bias) override { return inner_.add_bias(y, bias); }
  Status rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) override {
    return inner_.rms_norm_heads(x, weight, head_dim, eps);
  }
  Status scale(Tensor& x, float s) override { return inner_.scale(x, s); }
  Status softcap(Tensor& x, float cap) override { return inner_.softcap(x, cap); }
  Status gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override {
    matmuls_ = 0;
    return inner_.gather_rows(x, rows, out);
  }
  Status sample(const Tensor& logits, std::span<const SampleSpec> rows,
                std::span<SampledToken> out) override {
    return inner_.sample(logits, rows, out);
  }
  Status lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                     std::span<Tensor> v) override {
    return inner_.lora_shrink(x, layer, projs, v);
  }
  Status lora_expand(std::span<const Tensor> v, int32_t layer,
                     std::span<const ProjectionSlice> slices, Tensor& y) override {
    const int32_t proj = slices[0].proj;
    const uint32_t point = proj < 3                                 ? kQkv
                           : proj == static_cast<int32_t>(Projection::kO) ||
                                   proj == static_cast<int32_t>(Projection::kDown)
                               ? kResidual
                               : kProjOut;
    return after(inner_.lora_expand(v, layer, slices, y), point, y);
  }

 private:
  Status after(Status s, uint32_t point, const Tensor& t) {
    if (s.ok() && (points_ & point)) round(t);
    return s;
  }
  float rnd(float v) const {
    return fp16_ ? static_cast<float>(static_cast<_Float16>(v)) : quilt::testing::bf16_round(v);
  }
  void round(const Tensor& t) const {
    float* p = t.as<float>();
    for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = rnd(p[i]);
  }
  Backend& inner_;
  uint32_t points_;
  bool fp16_;
  int matmuls_ = 0;
};

}  // namespace budget

struct CaseResult {
  double first_err = 0;
  size_t safe = 0;       // margin-safe steps
  size_t agreed = 0;     // of those, before the first argmax that differs from the reference
};

// Runs case `c` teacher-forced on `backend`'s model: prefill, then each reference id as a decode.
CaseResult run_teacher_forced(Backend& backend, LlamaModel& model, AdapterSlots& slots,
                              const nlohmann::json& c, const ModelConfig& cfg) {
  CaseResult r;
  const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto ref = c["greedy_ids"].get<std::vector<int32_t>>();
  const auto margins = c["margins"].get<std::vector<double>>();
  while (r.safe < margins.size() && margins[r.safe] >= 0.05) ++r.safe;
  int32_t slot = -1, rank = 0;
  if (!c["adapter"].is_null()) {
    auto w = adapters::load_peft_adapter_dir(
        source_path("examples/adapters/" + c["adapter"].get<std::string>()), cfg);
    slot = slots.acquire(*w).value();
    rank = slots.rank_of(slot);
  }
  bool diverged = false;
  std::vector<float> logits;
  const int32_t n = static_cast<int32_t>(prompt.size());
  for (size_t step = 0; step <= r.safe && step < ref.size(); ++step) {
    StepLayout l;
    if (step == 0) {
      l = prefill_layout(prompt, slot, rank);
    } else {
      const int32_t pos = n + static_cast<int32_t>(step) - 1;
      const int32_t blocks = pos / 16 + 1;
      l.token_ids = {ref[step - 1]};
      l.positions = {pos};
      l.kv_slots = {pos};
      l.token_slots = {slot};
      for (int32_t b = 0; b < blocks; ++b) l.block_tables.push_back(b);
      l.sequences.push_back({0, 1, pos + 1, 0, blocks});
      l.logit_rows = {0};
      l.segment_starts = {0, 1};
      l.segment_slots = {slot};
      l.max_rank = slot >= 0 ? rank : 0;
    }
    EXPECT_TRUE(backend.begin_step(l).ok());
    EXPECT_TRUE(model.forward(l, logits).ok());
    if (step == 0) r.first_err = logits_error(logits, c["first_logits"]);
    if (step < r.safe && !diverged) {
      const auto top = std::max_element(logits.begin(), logits.end()) - logits.begin();
      if (top == ref[step]) {
        ++r.agreed;
      } else {
        diverged = true;
      }
    }
  }
  if (slot >= 0) slots.release(slot);
  return r;
}

TEST(PrecisionBudgetTest, DISABLED_WhichBf16RoundingsConformanceAffords) {
  using namespace budget;
  const std::string model_dir = source_path("examples/models/tiny-llama");
  const ModelConfig cfg = load_model_config(model_dir).value();
  auto store = TensorStore::open_dir(model_dir).value();
  const nlohmann::json expected = quilt::testing::load_expected();
  const uint32_t all = kGemmIn | kQkv | kKvCache | kProjOut | kResidual | kLoraW;
  const std::vector<std::pair<const char*, uint32_t>> scenarios = {
      {"float32 (cpu)", 0},
      {"every rounding (cuda today)", all},
      {"all but residual", all & ~kResidual},
      {"all but q/k/v", all & ~kQkv},
      {"all but proj outputs", all & ~kProjOut},
      {"all but lora weights", all & ~kLoraW},
      {"all but kv cache", all & ~kKvCache},
      {"all but gemm inputs", all & ~kGemmIn},
      {"gemm in + kv + lora w", kGemmIn | kKvCache | kLoraW},
      {"gemm in + kv", kGemmIn | kKvCache},
      {"gemm in", kGemmIn},
      {"kv cache", kKvCache},
      {"q/k/v", kQkv},
      {"proj outputs", kProjOut},
      {"residual", kResidual},
      {"kv cache, K only", kKvCache | kKOnly},
      {"kv cache, V only", kKvCache | kVOnly},
      {"all but kv, gemm in", all & ~(kKvCache | kGemmIn)},
      {"fp16: every rounding", all | kFp16},
      {"fp16: all but lora w", (all & ~kLoraW) | kFp16},
      {"fp16: all but residual", (all & ~kResidual) | kFp16},
      {"fp16: gemm in + kv", kGemmIn | kKvCache | kFp16},
  };
  for (const auto& [label, points] : scenarios) {
    CpuBackend cpu;
    RoundingBackend b(cpu, points & ~kFp16, (points & kFp16) != 0);
    auto model = LlamaModel::load(cfg, *store, b, 512, 64).value();
    ASSERT_TRUE(b.init_kv_cache({static_cast<int32_t>(cfg.num_layers), 64, 16,
                                 static_cast<int32_t>(cfg.num_kv_heads),
                                 static_cast<int32_t>(cfg.head_dim)})
                    .ok());
    LoraPoolShape pool{4096, cfg.hidden_size, 4, static_cast<int32_t>(cfg.num_layers)};
    auto slots = AdapterSlots::create(b, cfg, pool).value();
    double worst_base = 0, worst_small = 0, worst_all = 0;
    size_t safe = 0, agreed = 0;
    std::string left;
    for (size_t i = 0; i < expected["cases"].size(); ++i) {
      const auto& c = expected["cases"][i];
      const CaseResult r = run_teacher_forced(b, *model, *slots, c, cfg);
      const bool all_module = c["adapter"] == "sql-writer" || c["adapter"] == "legal-rs";
      double& worst = c["adapter"].is_null() ? worst_base : all_module ? worst_all : worst_small;
      worst = std::max(worst, r.first_err);
      safe += r.safe;
      agreed += r.agreed;
      if (r.agreed < r.safe) left += " " + std::to_string(i) + "@" + std::to_string(r.agreed);
      if (std::getenv("QUILT_BUDGET_VERBOSE") != nullptr && r.first_err > 1e-2) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), " [%zu: %.3g]", i, r.first_err);
        left += buf;
      }
    }
    std::printf(
        "[ budget ] %-28s worst logits err base %.3g, q/v or o/down adapters %.3g, all-module "
        "%.3g; %zu/%zu safe ids;%s\n",
        label, worst_base, worst_small, worst_all, agreed, safe, left.c_str());
  }
}

}  // namespace
}  // namespace quilt::engine
