// The reference backend: float32 activations in host memory, GEMMs of our own (gemm.h) over
// float32, bf16 or int8 weights (cpu_weights.h), the other ops in cpu/*.cc.
#pragma once

#include <unordered_map>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/rope.h"

namespace quilt::engine {

class CpuBackend final : public Backend {
 public:
  // quantize_int8 (--quantize int8): matrices are kept as int8 with per-row scales (cpu_weights.h).
  explicit CpuBackend(bool quantize_int8 = false) : quantize_int8_(quantize_int8) {}
  std::string name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::kF32; }

  Result<Tensor> allocate(int64_t rows, int64_t cols, DType dtype) override;
  Result<Tensor> load_weight(const TensorView& src, int64_t rows, int64_t cols) override;
  Status download(const Tensor& src, std::span<float> dst) override;

  Status init_kv_cache(const KvCacheShape& shape) override;
  Status init_lora_pool(const LoraPoolShape& shape) override;
  Status write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) override;
  Status write_lora_tables(std::span<const int32_t> page_indices,
                           std::span<const kernels::sgmv::LoraModuleRef> modules) override;

  Status begin_step(const StepLayout& layout) override;
  Status embedding(const Tensor& table, Tensor& out) override;
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  Status matmul(const Tensor& x, const Tensor& w, Tensor& out) override;
  Status matmul_add(const Tensor& x, const Tensor& w, Tensor& out) override;
  Status add(Tensor& acc, const Tensor& x) override;
  Status rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) override;
  Status kv_store(int32_t layer, const Tensor& k, const Tensor& v) override;
  Status attention(int32_t layer, const Tensor& q, int64_t num_heads,
                   const AttentionParams& params, Tensor& out) override;
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override;
  Status gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override;
  Status add_bias(Tensor& y, const Tensor& bias) override;
  Status rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) override;
  Status scale(Tensor& x, float s) override;
  Status softcap(Tensor& x, float cap) override;
  Status gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override;
  Status sample(const Tensor& logits, std::span<const SampleSpec> rows,
                std::span<SampledToken> out) override;
  Status lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                     std::span<Tensor> v) override;
  Status lora_expand(std::span<const Tensor> v, int32_t layer,
                     std::span<const ProjectionSlice> slices, Tensor& y) override;

 private:
  Status gemm(const Tensor& x, const Tensor& w, Tensor& out, float beta);
  // out = act(gate) * up row by row; act(gate_row, up_row, out_row, n) does one row.
  template <typename Act>
  Status gated(const Tensor& gate, const Tensor& up, Tensor& out, Act act);
  kernels::sgmv::PagedLoraWeights<float> lora_weights() const;
  kernels::sgmv::LoraBatch lora_batch() const;
  float* k_cache(int32_t layer) { return kv_.data() + layer * layer_stride_; }
  float* v_cache(int32_t layer) { return kv_.data() + layer * layer_stride_ + layer_stride_ / 2; }

  // cos/sin of a rope table at positions [0, positions), [positions, head_dim / 2] each.
  struct RopeCache {
    RopeTable table;
    int64_t positions = 0;
    std::vector<float> cos, sin;
  };
  const RopeCache& rope_cache(const RopeTable& table, int64_t positions);  // grown on demand

  bool quantize_int8_ = false;
  const StepLayout* step_ = nullptr;  // valid between begin_step calls
  std::vector<RopeCache> rope_caches_;  // one per distinct table (global, local)
  std::vector<int32_t> sample_order_;  // sample() scratch
  std::vector<float> sample_probs_;

  KvCacheShape kv_shape_;
  std::vector<float> kv_;     // per layer: K [blocks, block_size, kv_dim] then V, same shape
  int64_t layer_stride_ = 0;

  LoraPoolShape lora_shape_;
  std::vector<float> lora_pool_;       // [num_pages, page_elems]; empty when in the KV cache
  float* lora_base_ = nullptr;         // lora_pool_ or kv_ (LoraPoolShape::in_kv_cache)
  std::vector<int32_t> page_indices_;
  std::vector<kernels::sgmv::LoraModuleRef> lora_modules_;

  // Dense host copies of resident adapter matrices for the grouped LoRA GEMMs (cpu_lora.cc):
  // stacked A's of a fused shrink ([Σ rank, in]) and one Bᵀ ([rank, out]) per projection, built
  // at first use and dropped whenever pages or tables are written.
  struct DenseLora {
    std::vector<float> w;
    int64_t rows = 0;
    int64_t offsets[kernels::sgmv::kMaxFusedProjs] = {};  // first row of each stacked A
  };
  const DenseLora& dense_a(int32_t slot, int32_t layer, std::span<const int32_t> projs,
                           int64_t in_dim);
  const DenseLora& dense_bt(int32_t slot, int32_t layer, int32_t proj, int64_t out_dim);
  std::unordered_map<uint64_t, DenseLora> lora_dense_;  // node-based: references stay valid
};

}  // namespace quilt::engine
