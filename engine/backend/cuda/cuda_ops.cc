// CudaBackend's per-step ops: each checks shapes on the host and enqueues one kernels/ launch.
#include "engine/backend/cuda/cuda_backend.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

#include "engine/model/rope.h"
#include "kernels/activation/silu_mul.h"
#include "kernels/attention/paged_attention.h"
#include "kernels/attention/paged_kv.h"
#include "kernels/elementwise/add.h"
#include "kernels/embedding/embedding.h"
#include "kernels/norm/rms_norm.h"
#include "kernels/rope/rope.h"

namespace quilt::engine::cuda {
namespace {

Status check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  if (a.rows != b.rows || a.cols != b.cols) {
    return Status::Internal(std::string("cuda backend: ") + op + ": shapes do not agree");
  }
  return Status::OK();
}

// Room for 16 tables of 2 × 256 frequencies (head_dim 512, LongRoPE).
constexpr size_t kRopeFloats = 16 * 2 * 256;
// Split-K's workspace for eager steps, at least: 2 MiB (a decode of 32 heads of 128 at batch 1
// splits 64 ways in it, at batch 8 15 ways).
constexpr int64_t kMinAttentionWorkspaceFloats = int64_t{1} << 19;

}  // namespace

Result<const float*> CudaBackend::rope_freqs(const RopeTable& table) {
  const std::vector<float> long_freqs =
      table.long_from_position > 0 ? table.long_inv_freq : std::vector<float>{};
  for (const RopeTableEntry& t : rope_tables_) {
    if (t.inv_freq == table.inv_freq && t.long_inv_freq == long_freqs) {
      return static_cast<const float*>(inv_freq_->data()) + t.offset;
    }
  }
  std::vector<float> host = table.inv_freq;
  host.insert(host.end(), long_freqs.begin(), long_freqs.end());
  if (rope_floats_used_ + host.size() > kRopeFloats) {
    return Status::Internal("cuda backend: rope: more distinct RoPE tables than fit " +
                            std::to_string(kRopeFloats) + " frequencies");
  }
  if (inv_freq_ == nullptr) {
    QUILT_ASSIGN_OR_RETURN(inv_freq_, DeviceMemory::create(kRopeFloats * sizeof(float)));
  }
  float* dst = static_cast<float*>(inv_freq_->data()) + rope_floats_used_;
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(
      dst, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice, stream())));
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));  // `host` goes
  rope_tables_.push_back({table.inv_freq, long_freqs, rope_floats_used_});
  rope_floats_used_ += host.size();
  return static_cast<const float*>(dst);
}

Result<kernels::attention::SplitPlan> CudaBackend::plan_attention_split(int64_t num_heads,
                                                                        int32_t window) {
  namespace attn = kernels::attention;
  const int64_t capacity = static_cast<int64_t>(kv_shape_.num_blocks) * kv_shape_.block_size;
  if ((window > 0 ? std::min<int64_t>(capacity, window) : capacity) <= attn::kSplitMinSpan) {
    return attn::SplitPlan{};  // no query can see enough positions to split
  }
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamIsCapturing(stream(), &capture)));
  if (attention_partials_ == nullptr) {
    // The first attention allocates it, in an eager step (a graph captures decodes, which come
    // after a prefill), so that a graph's plan always has it and its address never moves. Sized
    // for every graph plan (any batch) and at least kMinAttentionWorkspaceFloats for eager ones.
    if (capture != cudaStreamCaptureStatusNone) return attn::SplitPlan{};
    int64_t floats = kMinAttentionWorkspaceFloats;
    for (int64_t n = 1; n <= attn::kGraphTargetBlocks; ++n) {
      floats = std::max(floats, attn::plan_split_any_span(n, kv_shape_.num_kv_heads,
                                                          static_cast<int32_t>(num_heads),
                                                          kv_shape_.head_dim, INT64_MAX)
                                    .workspace_floats);
    }
    QUILT_ASSIGN_OR_RETURN(attention_partials_,
                           DeviceMemory::create(static_cast<size_t>(floats) * sizeof(float)));
    attention_workspace_floats_ = floats;
  }
  const int64_t workspace = attention_workspace_floats_;
  if (capture != cudaStreamCaptureStatusNone) {  // replayed at lengths not known now
    return attn::plan_split_any_span(step_->num_tokens(), kv_shape_.num_kv_heads,
                                     static_cast<int32_t>(num_heads), kv_shape_.head_dim,
                                     workspace);
  }
  int32_t max_span = 0;
  for (const StepLayout::Sequence& seq : step_->sequences) {
    max_span = std::max(max_span, window > 0 ? std::min(seq.ctx_len, window) : seq.ctx_len);
  }
  return attn::plan_split(max_span, step_->num_tokens(), static_cast<int32_t>(num_heads),
                          kv_shape_.head_dim, workspace);
}

Status CudaBackend::embedding(const Tensor& table, Tensor& out) {
  QUILT_RETURN_IF_ERROR(require_step("embedding"));
  QUILT_RETURN_IF_ERROR(check(table, "embedding table"));
  QUILT_RETURN_IF_ERROR(check(out, "embedding output"));
  const int64_t n = step_->num_tokens();
  if (out.rows < n || out.cols != table.cols)
    return Status::Internal("cuda backend: embedding shapes");
  for (int32_t id : step_->token_ids) {
    if (id < 0 || id >= table.rows) return Status::Internal("cuda backend: token id out of range");
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::embedding::GatherParams<T> p{table.as<T>(), step_ints(offsets_.token_ids),
                                                out.as<T>(), n, table.cols};
    return kernels::embedding::gather_rows_cuda(p, stream());
  }));
}

Status CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  QUILT_RETURN_IF_ERROR(check(x, "rms_norm input"));
  QUILT_RETURN_IF_ERROR(check(weight, "rms_norm weight"));
  QUILT_RETURN_IF_ERROR(check(out, "rms_norm output"));
  QUILT_RETURN_IF_ERROR(check_same_shape(x, out, "rms_norm"));
  if (weight.num_elements() != x.cols)
    return Status::Internal("cuda backend: rms_norm weight size");
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::norm::RmsNormParams<T> p{x.as<T>(), weight.as<T>(), out.as<T>(),
                                            x.rows,    x.cols,         eps};
    return kernels::norm::rms_norm_cuda(p, stream());
  }));
}

Status CudaBackend::matmul(const Tensor& x, const Tensor& w, Tensor& out) {
  return gemm_.run(x, w, out, 0.0f, stream());
}

Status CudaBackend::matmul_add(const Tensor& x, const Tensor& w, Tensor& out) {
  return gemm_.run(x, w, out, 1.0f, stream());  // cuBLASLt's epilogue reads out as C
}

Status CudaBackend::add(Tensor& acc, const Tensor& x) {
  QUILT_RETURN_IF_ERROR(check(acc, "add accumulator"));
  QUILT_RETURN_IF_ERROR(check(x, "add input"));
  QUILT_RETURN_IF_ERROR(check_same_shape(acc, x, "add"));
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::elementwise::AddParams<T> p{acc.as<T>(), x.as<T>(), acc.num_elements()};
    return kernels::elementwise::add_cuda(p, stream());
  }));
}

Status CudaBackend::rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) {
  QUILT_RETURN_IF_ERROR(require_step("rope"));
  QUILT_RETURN_IF_ERROR(check(q, "rope q", true));
  QUILT_RETURN_IF_ERROR(check(k, "rope k", true));
  if (head_dim <= 0 || head_dim % 2 != 0 || q.cols % head_dim != 0 || k.cols % head_dim != 0 ||
      q.rows != k.rows || q.rows > step_->num_tokens() ||
      static_cast<int64_t>(table.inv_freq.size()) != head_dim / 2) {
    return Status::Internal("cuda backend: rope shapes do not agree");
  }
  if (table.long_from_position < 0 ||
      (table.long_from_position > 0 && table.long_inv_freq.size() != table.inv_freq.size())) {
    return Status::Internal("cuda backend: rope: LongRoPE's long_inv_freq does not match");
  }
  QUILT_ASSIGN_OR_RETURN(const float* freqs, rope_freqs(table));
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    kernels::rope::RopeParams<T> p{};
    p.q = q.as<T>();
    p.k = k.as<T>();
    p.positions = step_ints(offsets_.positions);
    p.inv_freq = freqs;
    p.long_inv_freq = table.long_from_position > 0 ? freqs + table.inv_freq.size() : nullptr;
    p.long_from_position = table.long_from_position;
    p.attention_scaling = table.attention_scaling;
    p.num_tokens = q.rows;
    p.num_q_heads = static_cast<int32_t>(q.cols / head_dim);
    p.num_k_heads = static_cast<int32_t>(k.cols / head_dim);
    p.head_dim = static_cast<int32_t>(head_dim);
    p.q_stride = q.stride();
    p.k_stride = k.stride();
    return kernels::rope::rope_cuda(p, stream());
  }));
}

Status CudaBackend::kv_store(int32_t layer, const Tensor& k, const Tensor& v) {
  QUILT_RETURN_IF_ERROR(require_step("kv_store"));
  QUILT_RETURN_IF_ERROR(check(k, "kv_store k", true));
  QUILT_RETURN_IF_ERROR(check(v, "kv_store v", true));
  QUILT_RETURN_IF_ERROR(check_same_shape(k, v, "kv_store"));
  if (kv_ == nullptr || layer < 0 || layer >= kv_shape_.num_layers ||
      k.cols != static_cast<int64_t>(kv_shape_.num_kv_heads) * kv_shape_.head_dim ||
      k.rows != step_->num_tokens()) {
    return Status::Internal("cuda backend: kv_store does not match the cache or the step");
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::attention::KvStoreParams<T> p{k.as<T>(),
                                                 v.as<T>(),
                                                 k_cache<T>(layer),
                                                 v_cache<T>(layer),
                                                 step_ints(offsets_.kv_slots),
                                                 k.rows,
                                                 k.cols,
                                                 k.stride(),
                                                 v.stride()};
    return kernels::attention::kv_store_cuda(p, stream());
  }));
}

Status CudaBackend::attention(int32_t layer, const Tensor& q, int64_t num_heads,
                              const AttentionParams& params, Tensor& out) {
  if (!(params.scale >= 0.f) || !std::isfinite(params.scale) || !(params.softcap >= 0.f) ||
      !std::isfinite(params.softcap) || params.sliding_window < 0) {
    return Status::Internal("cuda backend: attention: scale " + std::to_string(params.scale) +
                            ", softcap " + std::to_string(params.softcap) + ", window " +
                            std::to_string(params.sliding_window));
  }
  QUILT_RETURN_IF_ERROR(require_step("attention"));
  QUILT_RETURN_IF_ERROR(check(q, "attention q", true));
  QUILT_RETURN_IF_ERROR(check(out, "attention output"));
  QUILT_RETURN_IF_ERROR(check_same_shape(q, out, "attention"));
  if (kv_ == nullptr || layer < 0 || layer >= kv_shape_.num_layers ||
      q.cols != num_heads * kv_shape_.head_dim || q.rows != step_->num_tokens()) {
    return Status::Internal("cuda backend: attention does not match the cache or the step");
  }
  QUILT_ASSIGN_OR_RETURN(const kernels::attention::SplitPlan split,
                         plan_attention_split(num_heads, params.sliding_window));
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    kernels::attention::PagedAttentionParams<T> p{};
    p.q = q.as<T>();
    p.out = out.as<T>();
    p.k_cache = k_cache<T>(layer);
    p.v_cache = v_cache<T>(layer);
    p.token_seq = step_ints(offsets_.token_seq);
    p.seqs = reinterpret_cast<const kernels::attention::AttentionSeq*>(step_ints(offsets_.seqs));
    p.block_tables = step_ints(offsets_.block_tables);
    p.num_tokens = q.rows;
    p.num_heads = static_cast<int32_t>(num_heads);
    p.num_kv_heads = kv_shape_.num_kv_heads;
    p.head_dim = kv_shape_.head_dim;
    p.block_size = kv_shape_.block_size;
    p.scale = params.scale > 0.f ? params.scale
                                 : 1.0f / std::sqrt(static_cast<float>(kv_shape_.head_dim));
    p.q_stride = q.stride();
    p.softcap = params.softcap;
    p.sliding_window = params.sliding_window;
    p.num_partitions = split.num_partitions;
    p.partition_size = split.partition_size;
    if (split.num_partitions > 1) {
      p.partial_acc = static_cast<float*>(attention_partials_->data());
      p.partial_ml = p.partial_acc + q.rows * num_heads * split.num_partitions * kv_shape_.head_dim;
    }
    return kernels::attention::paged_attention_cuda(p, stream());
  }));
}

Status CudaBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  QUILT_RETURN_IF_ERROR(check(gate, "silu_mul gate", true));
  QUILT_RETURN_IF_ERROR(check(up, "silu_mul up", true));
  QUILT_RETURN_IF_ERROR(check(out, "silu_mul output"));
  QUILT_RETURN_IF_ERROR(check_same_shape(gate, up, "silu_mul"));
  QUILT_RETURN_IF_ERROR(check_same_shape(gate, out, "silu_mul"));
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::activation::SiluMulParams<T> p{gate.as<T>(), up.as<T>(),      out.as<T>(),
                                                  gate.rows,    gate.cols,       gate.stride(),
                                                  up.stride()};
    return kernels::activation::silu_mul_cuda(p, stream());
  }));
}

Status CudaBackend::gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  QUILT_RETURN_IF_ERROR(check(x, "gather_rows input"));
  QUILT_RETURN_IF_ERROR(check(out, "gather_rows output"));
  if (out.cols != x.cols || out.rows < static_cast<int64_t>(rows.size())) {
    return Status::Internal("cuda backend: gather_rows shapes do not agree");
  }
  for (int32_t r : rows) {
    if (r < 0 || r >= x.rows) return Status::Internal("cuda backend: gather_rows row out of range");
  }
  const int32_t* dev_rows = nullptr;
  if (step_ != nullptr && rows.data() == step_->logit_rows.data() &&
      rows.size() == step_->logit_rows.size()) {
    dev_rows = step_ints(offsets_.logit_rows);  // the model's case: uploaded with the step
  } else {
    QUILT_RETURN_IF_ERROR(upload(rows.data(), rows.size_bytes(), rows_scratch_));
    dev_rows = static_cast<const int32_t*>(rows_scratch_->data());
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::embedding::GatherParams<T> p{x.as<T>(), dev_rows, out.as<T>(),
                                                static_cast<int64_t>(rows.size()), x.cols};
    return kernels::embedding::gather_rows_cuda(p, stream());
  }));
}

}  // namespace quilt::engine::cuda
