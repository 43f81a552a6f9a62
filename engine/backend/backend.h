// The Backend seam: the few ops the model's forward pass is written against. cpu/ is the reference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/backend/step_layout.h"
#include "engine/weights/safetensors.h"
#include "kernels/sgmv/sgmv.h"

namespace quilt::engine {

// Memory owned by a backend (host memory for cpu, device memory for cuda).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() = 0;
  virtual size_t bytes() const = 0;
};

// A 2-D row-major tensor in backend memory. Copies share the buffer; head() and columns() make
// views.
struct Tensor {
  std::shared_ptr<Buffer> buffer;
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // elements from one row to the next; 0: cols (contiguous)

  int64_t num_elements() const { return rows * cols; }
  int64_t stride() const { return row_stride == 0 ? cols : row_stride; }
  bool contiguous() const { return stride() == cols; }
  // The first `n` rows: a step uses the head of tensors sized for the largest step.
  Tensor head(int64_t n) const { Tensor t = *this; t.rows = n; return t; }
  // Columns [begin, begin + n) of every row: q, k and v inside one fused projection's output.
  // Only the ops that say so take such a view (rope, kv_store, attention's q, silu_mul's inputs).
  Tensor columns(int64_t begin, int64_t n) const {
    Tensor t = *this;
    t.row_stride = stride();
    t.cols = n;
    t.data = static_cast<char*>(data) + begin * dtype_size(dtype);
    return t;
  }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

// Sizes of the paged memory the backend holds for the engine.
struct KvCacheShape {
  int32_t num_layers = 0;
  int32_t num_blocks = 0;
  int32_t block_size = 0;  // tokens per block
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
};

struct LoraPoolShape {
  int32_t num_pages = 0;
  int64_t page_elems = 0;
  int32_t max_slots = 0;
  int32_t num_layers = 0;
  // One pool (S-LoRA's unified paging): the pages are the KV cache's memory, page p the elements
  // [p * page_elems, (p + 1) * page_elems) of it; num_pages * page_elems is the whole cache. The
  // engine's allocator keeps KV blocks and adapter pages apart. Needs init_kv_cache first.
  bool in_kv_cache = false;
};

// A device's memory as its runtime reports it (cudaMemGetInfo).
struct DeviceMemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

struct RopeTable;  // engine/model/rope.h

// How to pick the next token from one logit row (engine/sampling/sampler.h makes these).
struct SampleSpec {
  float temperature = 0.f;  // ≤ 0: greedy
  float top_p = 1.f;
  int32_t top_k = 0;        // 0: off
  int32_t logprobs = 0;     // top-N log-probabilities wanted (at most 20)
  double uniform = 0;       // the sequence's canonical draw in [0, 1), used when temperature > 0
  // Added to the row's logits before anything else, logprobs included: logit_bias and the
  // presence/frequency penalties folded into one entry per token id, ids ascending and in range.
  std::vector<std::pair<int32_t, float>> logit_adjust;
};

// What sampling one row gave.
struct SampledToken {
  int32_t token = 0;
  float logprob = 0.f;                         // of token, when logprobs > 0
  std::vector<std::pair<int32_t, float>> top;  // the logprobs best (id, log-probability)
};

// Where one projection's output sits in a fused output row: columns [col, col + cols) of y.
struct ProjectionSlice {
  int32_t proj;  // engine Projection
  int64_t col;
  int64_t cols;
};

// Per-layer attention options; the defaults are Llama's.
struct AttentionParams {
  float scale = 0.f;           // softmax scale; 0: 1/sqrt(head_dim)
  // > 0: score = softcap * tanh(score / softcap), before the mask (Gemma 2).
  float softcap = 0.f;
  // > 0: the query at position p sees keys at positions j with p - j < sliding_window (HF's mask).
  int32_t sliding_window = 0;
};

// Decode steps run as replayed CUDA graphs (cuda; engine/backend/cuda/decode_graphs.h).
struct StepGraphStats {
  uint64_t captures = 0;      // graphs captured (one per padded batch size and LoRA rank)
  uint64_t replays = 0;       // decode steps run by replaying a graph
  uint64_t eager_decodes = 0; // decode steps that could not use a graph and ran op by op
  uint64_t fallbacks = 0;     // of those, the ones not capturing a graph: too large, no slot
                              // for padding rows, or a size whose capture failed
};

// The model's forward pass over a step's layout: the logits of layout.logit_rows ([rows, vocab]
// float32, in backend memory until the next step).
using StepForward = std::function<Result<Tensor>(const StepLayout&)>;

// Not thread-safe: one engine thread drives a backend. Ops are ordered (a stream on cuda).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The dtype activations (and cuda's weights) are kept in (cpu: F32; cuda: F16 or BF16).
  virtual DType compute_dtype() const = 0;

  // --- memory ---
  // A [rows, cols] tensor of `dtype`: compute_dtype() for activations, F32 where precision must
  // not drop (the LoRA intermediate v). Its contents are undefined until written.
  virtual Result<Tensor> allocate(int64_t rows, int64_t cols, DType dtype) = 0;
  // A weight shaped [rows, cols], in the form the backend's ops read it: cuda converts it to
  // compute_dtype(); cpu keeps matrices in bf16 when the file has them in bf16 (its GEMM widens
  // them exactly) or as int8 with per-row scales under --quantize int8 (DType::kI8), and everything
  // else in float32. Only matmul, matmul_add and embedding take a weight that is not float32.
  virtual Result<Tensor> load_weight(const TensorView& src, int64_t rows, int64_t cols) = 0;
  virtual Status download(const Tensor& src, std::span<float> dst) = 0;

  // The device's free and total memory, to size the paged pool by --gpu-memory-fraction;
  // Unimplemented where memory is sized by flags alone (cpu).
  virtual Result<DeviceMemoryInfo> memory_info() const {
    return Status::Unimplemented(name() + ": no device memory to query");
  }

  // --- paged state: KV cache and the LoRA page pool ---
  virtual Status init_kv_cache(const KvCacheShape& shape) = 0;
  virtual Status init_lora_pool(const LoraPoolShape& shape) = 0;
  // Writes whole pages of adapter weights: data holds pages.size() * page_elems floats.
  virtual Status write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) = 0;
  // Replaces the slot tables: page_indices (the shared index list) and modules [slot][layer][proj].
  virtual Status write_lora_tables(std::span<const int32_t> page_indices,
                                   std::span<const kernels::sgmv::LoraModuleRef> modules) = 0;

  // --- adapter loads that overlap compute (issue 9, item 3) ---
  // Starts writing whole pages as write_lora_pages does and returns the load's id; `data` may be
  // freed on return. Until wait_lora_load(id), no op is ordered after the copy: the engine calls
  // it before the first step that reads these pages, not before. The default copies synchronously
  // and returns 0 (nothing to wait for); cuda copies on a stream of its own from pinned memory.
  virtual Result<uint64_t> start_lora_load(std::span<const int32_t> pages,
                                           std::span<const float> data) {
    QUILT_RETURN_IF_ERROR(write_lora_pages(pages, data));
    return uint64_t{0};
  }
  // Orders every later op after load `id` without the host waiting for it (cuda: the compute
  // stream waits on the load's event). The load's failure comes back here. 0, or a load already
  // waited for: nothing to do.
  virtual Status wait_lora_load(uint64_t id) {
    (void)id;
    return Status::OK();
  }

  // --- a step ---
  // Takes the step's layout (uploads it once on cuda); valid until the next begin_step.
  virtual Status begin_step(const StepLayout& layout) = 0;
  // One whole step: begin_step(layout), then forward(layout). With `graphs`, cuda runs a decode
  // step (every sequence one token) by replaying a CUDA graph of forward captured for its padded
  // batch size, calling forward only to capture it. Either way the first layout.logit_rows.size()
  // rows of the result are the step's logits.
  virtual Result<Tensor> run_step(const StepLayout& layout, const StepForward& forward,
                                  bool graphs) {
    (void)graphs;
    QUILT_RETURN_IF_ERROR(begin_step(layout));
    return forward(layout);
  }
  virtual StepGraphStats step_graph_stats() const { return {}; }

  virtual Status embedding(const Tensor& table, Tensor& out) = 0;  // out[t] = table[token_ids[t]]
  virtual Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // out[M, N] = x[M, K] · w[N, K]ᵀ
  virtual Status matmul(const Tensor& x, const Tensor& w, Tensor& out) = 0;
  // out[M, N] += x[M, K] · w[N, K]ᵀ, one rounding of the sum: the residual add fused into the
  // projection that feeds it.
  virtual Status matmul_add(const Tensor& x, const Tensor& w, Tensor& out) = 0;
  virtual Status add(Tensor& acc, const Tensor& x) = 0;  // acc += x
  // Rotates q [T, heads*head_dim] and k [T, kv_heads*head_dim] in place at the step's positions.
  // q and k may be columns() views (of one fused q/k/v output).
  virtual Status rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) = 0;
  // Writes k and v [T, kv_dim] (views allowed) into layer's cache at the step's kv_slots.
  virtual Status kv_store(int32_t layer, const Tensor& k, const Tensor& v) = 0;
  // Causal attention of q [T, heads*head_dim] (a view allowed) over each sequence's cached
  // context, with the layer's scale, score soft-capping and sliding window; out is contiguous.
  virtual Status attention(int32_t layer, const Tensor& q, int64_t num_heads,
                           const AttentionParams& params, Tensor& out) = 0;
  // out = silu(gate) * up; gate and up may be views (the halves of one fused gate/up output).
  virtual Status silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // out = gelu_tanh(gate) * up (GELU with the tanh approximation, "gelu_pytorch_tanh"); views as
  // silu_mul.
  virtual Status gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // y[t, :] += bias[0, :] (bias [1, cols], y contiguous): Qwen2's q/k/v biases.
  virtual Status add_bias(Tensor& y, const Tensor& bias) = 0;
  // In place: RMSNorm over every head_dim-wide chunk of each row of x (x may be a columns() view
  // of the fused q/k/v output), weight [1, head_dim]: Qwen3/Gemma 3 q_norm and k_norm.
  virtual Status rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) = 0;
  // x *= s (compute dtype or float32): Gemma's embedding scale.
  virtual Status scale(Tensor& x, float s) = 0;
  // x = cap * tanh(x / cap) on float32 logits: Gemma 2's final logit soft-capping.
  virtual Status softcap(Tensor& x, float cap) = 0;
  virtual Status gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) = 0;

  // Picks a token from each row of logits [rows.size(), vocab] (float32) as engine/sampling's
  // sample_logits() does; only the ids and the requested log-probabilities leave the backend.
  // Waits for the result.
  virtual Status sample(const Tensor& logits, std::span<const SampleSpec> rows,
                        std::span<SampledToken> out) = 0;

  // LoRA over the step's adapter layout (kernels/sgmv). x and y are compute_dtype(); v tensors are
  // [T, max_rank] float32 (allocated with DType::kF32) on every backend.
  // Fused shrink: v[i] = x · Aᵀ of projs[i], for the projections that read one x.
  virtual Status lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                             std::span<Tensor> v) = 0;
  // Fused expand: y[:, s.col .. s.col + s.cols) += scale · v[i] · Bᵀ for s = slices[i], every
  // projection writing into its columns of one output row (q/k/v, gate/up) in one pass. Up to
  // kernels::sgmv::kMaxFusedProjs slices, not overlapping.
  virtual Status lora_expand(std::span<const Tensor> v, int32_t layer,
                             std::span<const ProjectionSlice> slices, Tensor& y) = 0;
};

// How the base model's matrices are stored (--quantize). kInt8: int8 with one float32 scale per
// output row, dequantized inside the GEMM, activations and LoRA in float as without it (cpu only).
enum class WeightQuantization { kNone, kInt8 };
// A --quantize value: "none" or "int8".
Result<WeightQuantization> parse_quantization(const std::string& name);

// "cpu", "cuda" or "cuda:N". cuda is an error where it was not built or no device is found.
// `dtype` is what a cuda backend keeps weights, activations, the KV cache and adapter pages in:
// kF16 (the default: 3 more mantissa bits than bf16, which GPU conformance needs; see
// tests/engine/forward_precision_cuda_test.cc) or kBF16 (for models whose activations overflow
// float16's ±65504). The cpu backend computes in float32 whatever it says.
Result<std::unique_ptr<Backend>> make_backend(
    const std::string& device, DType dtype = DType::kF16,
    WeightQuantization quantization = WeightQuantization::kNone);
// A --dtype value: "float16" (or "fp16", "half") or "bfloat16" (or "bf16").
Result<DType> parse_compute_dtype(const std::string& name);

}  // namespace quilt::engine
