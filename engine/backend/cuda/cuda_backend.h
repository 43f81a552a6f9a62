// The CUDA backend: 16-bit (fp16 or bf16) weights, activations, KV cache and adapter pages in
// device memory, cuBLASLt GEMMs, kernels/ for the other ops, every op enqueued on the backend's one
// stream.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cuda/cuda_gemm.h"
#include "engine/backend/cuda/cuda_handles.h"
#include "engine/backend/cuda/decode_graphs.h"
#include "engine/backend/cuda/lora_loader.h"
#include "engine/backend/cuda/step_metadata.h"
#include "kernels/attention/paged_attention.h"

namespace quilt::engine::cuda {

// Not thread-safe: one engine thread drives it (Backend's contract). Ops only enqueue work;
// download() is the one call that waits for the stream.
class CudaBackend final : public Backend {
 public:
  // Selects `device` and creates the stream and cuBLASLt handle. Fails clearly without a device.
  // `dtype` (kF16 or kBF16) is what weights, activations, the KV cache and adapter pages are kept
  // in; every product accumulates in float32 either way.
  static Result<std::unique_ptr<CudaBackend>> create(int device, DType dtype);
  ~CudaBackend() override;

  std::string name() const override { return "cuda:" + std::to_string(device_); }
  DType compute_dtype() const override { return dtype_; }

  Result<Tensor> allocate(int64_t rows, int64_t cols, DType dtype) override;
  Result<Tensor> load_weight(const TensorView& src, int64_t rows, int64_t cols) override;
  Status download(const Tensor& src, std::span<float> dst) override;

  Result<DeviceMemoryInfo> memory_info() const override;  // cudaMemGetInfo
  Status init_kv_cache(const KvCacheShape& shape) override;
  Status init_lora_pool(const LoraPoolShape& shape) override;
  Status write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) override;
  Status write_lora_tables(std::span<const int32_t> page_indices,
                           std::span<const kernels::sgmv::LoraModuleRef> modules) override;
  // Adapter loads on a copy stream of their own (lora_loader.h); the host never waits for them.
  Result<uint64_t> start_lora_load(std::span<const int32_t> pages,
                                   std::span<const float> data) override;
  Status wait_lora_load(uint64_t id) override;
  // Tests and metrics: copies, stream waits, staging waits so far (zeros before init_lora_pool).
  LoraLoadStats lora_load_stats() const;

  Status begin_step(const StepLayout& layout) override;
  // Decode steps through CUDA graphs when `graphs` (decode_graphs.h); others as begin_step +
  // forward.
  Result<Tensor> run_step(const StepLayout& layout, const StepForward& forward,
                          bool graphs) override;
  StepGraphStats step_graph_stats() const override;
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

  cudaStream_t stream() const { return stream_.get(); }

 private:
  CudaBackend(int device, DType dtype) : device_(device), dtype_(dtype) {}
  friend class DecodeGraphs;
  // begin_step with the metadata in `buffer` (grown to at least min_bytes when too small; then
  // *reallocated is set): decode graphs keep one of their own whose address never moves.
  Status begin_step_in(const StepLayout& layout, std::shared_ptr<DeviceMemory>& buffer,
                       size_t min_bytes, bool* reallocated);
  Status require_step(const char* op) const;
  // f(T{}) with T the storage type of dtype_ (__half or __nv_bfloat16): one body for both.
  template <typename F>
  cudaError_t dispatch(F&& f) const {
    return dtype_ == DType::kF16 ? f(__half{}) : f(__nv_bfloat16{});
  }
  // t is of dtype_ and contiguous (or, with view_ok, any row stride).
  Status check(const Tensor& t, const char* what, bool view_ok = false) const;
  // A device int32 array of the step's metadata (StepOffsets field), valid until next begin_step.
  const int32_t* step_ints(int64_t offset) const { return meta_dev_ + offset; }
  template <typename T>
  T* k_cache(int32_t layer) const {
    return static_cast<T*>(kv_->data()) + layer * layer_elems_;
  }
  template <typename T>
  T* v_cache(int32_t layer) const {
    return k_cache<T>(layer) + layer_elems_ / 2;
  }
  // Copies `bytes` of host memory into `dev` (grown when too small) on the stream, and waits.
  Status upload(const void* host, size_t bytes, std::shared_ptr<DeviceMemory>& dev);
  template <typename T>
  kernels::sgmv::PagedLoraWeights<T> lora_weights() const;
  kernels::sgmv::LoraBatch lora_batch() const;
  // The device copy of `table`'s frequencies (uploaded on first sight).
  Result<const float*> rope_freqs(const RopeTable& table);
  // How far this step's attention splits its contexts (kernels/attention plan_split), by the
  // longest span a query sees; allocates the workspace the first time a step splits.
  Result<kernels::attention::SplitPlan> plan_attention_split(int64_t num_heads, int32_t window);

  // Constant after create().
  int device_;
  DType dtype_;
  Stream stream_;
  Gemm gemm_;

  // The step: its layout on the host, and the same packed in device memory (one copy a step).
  const StepLayout* step_ = nullptr;
  StepOffsets offsets_;
  std::vector<int32_t> meta_host_;
  PinnedMemory meta_pinned_;
  Event meta_uploaded_;  // the pinned staging buffer is free again once this has fired
  std::shared_ptr<DeviceMemory> meta_buffer_;
  const int32_t* meta_dev_ = nullptr;
  std::shared_ptr<DeviceMemory> rows_scratch_;  // gather_rows of rows other than the step's

  // sample(): the rows' specs, sort keys and probabilities (scratch), and what comes back.
  std::shared_ptr<DeviceMemory> sample_specs_, sample_keys_, sample_probs_, sample_out_;

  // RoPE's frequencies in device memory: every distinct table the model passes (Gemma 3
  // alternates a local and a global one) at its own offset of one buffer, uploaded the first time
  // it is seen. The buffer is allocated once, at its cap, and never moved (a graph may read it).
  struct RopeTableEntry {
    std::vector<float> inv_freq, long_inv_freq;  // the host table: the key
    size_t offset;                               // inv_freq, then long_inv_freq, from here
  };
  std::vector<RopeTableEntry> rope_tables_;
  size_t rope_floats_used_ = 0;
  std::shared_ptr<DeviceMemory> inv_freq_;

  // Split-K attention's float32 partial results: allocated once by the first attention over a
  // cache that can hold a context worth splitting; never grown, moved or freed afterwards (a
  // captured graph may read it).
  std::shared_ptr<DeviceMemory> attention_partials_;
  int64_t attention_workspace_floats_ = 0;

  KvCacheShape kv_shape_;
  std::shared_ptr<DeviceMemory> kv_;  // per layer: K [blocks, block_size, kv_dim] then V
  int64_t layer_elems_ = 0;           // K and V of one layer

  LoraPoolShape lora_shape_;
  std::shared_ptr<DeviceMemory> lora_pool_;     // [num_pages, page_elems], dtype_
  std::shared_ptr<DeviceMemory> page_indices_;  // int32
  std::shared_ptr<DeviceMemory> lora_modules_;  // LoraModuleRef [slots][layers][projections]
  int64_t num_modules_ = 0;
  int64_t page_index_capacity_ = 0;             // page_indices_ holds at most this many
  std::unique_ptr<LoraLoader> lora_loader_;     // after lora_pool_: freed first, its copies done
  std::unique_ptr<DecodeGraphs> graphs_;        // created at the first step that may use one
};

}  // namespace quilt::engine::cuda
