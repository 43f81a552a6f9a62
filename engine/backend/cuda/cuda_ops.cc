// CudaBackend's per-step ops: each checks shapes on the host and enqueues one kernels/ launch.
#include "engine/backend/cuda/cuda_backend.h"

#include <cmath>

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

}  // namespace

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
  if (table.long_from_position > 0) return Status::Unimplemented("rope (LongRoPE) on cuda: not yet");
  if (table.inv_freq != inv_freq_host_ || inv_freq_ == nullptr) {  // once per model in practice
    const size_t bytes = table.inv_freq.size() * sizeof(float);
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
    inv_freq_.reset();
    QUILT_ASSIGN_OR_RETURN(inv_freq_, DeviceMemory::create(bytes));
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(
        inv_freq_->data(), table.inv_freq.data(), bytes, cudaMemcpyHostToDevice, stream())));
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
    inv_freq_host_ = table.inv_freq;
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    kernels::rope::RopeParams<T> p{};
    p.q = q.as<T>();
    p.k = k.as<T>();
    p.positions = step_ints(offsets_.positions);
    p.inv_freq = static_cast<const float*>(inv_freq_->data());
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
  if (params.scale != 0.f || params.softcap != 0.f || params.sliding_window != 0) {
    return Status::Unimplemented(
        "attention on cuda: not yet (scale, softcap and sliding window are Llama's only)");
  }
  QUILT_RETURN_IF_ERROR(require_step("attention"));
  QUILT_RETURN_IF_ERROR(check(q, "attention q", true));
  QUILT_RETURN_IF_ERROR(check(out, "attention output"));
  QUILT_RETURN_IF_ERROR(check_same_shape(q, out, "attention"));
  if (kv_ == nullptr || layer < 0 || layer >= kv_shape_.num_layers ||
      q.cols != num_heads * kv_shape_.head_dim || q.rows != step_->num_tokens()) {
    return Status::Internal("cuda backend: attention does not match the cache or the step");
  }
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
    p.scale = 1.0f / std::sqrt(static_cast<float>(kv_shape_.head_dim));
    p.q_stride = q.stride();
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

// The ops of the Qwen, Gemma and Phi architectures: the CUDA kernels are still to come.
Status CudaBackend::gelu_tanh_mul(const Tensor&, const Tensor&, Tensor&) {
  return Status::Unimplemented("gelu_tanh_mul on cuda: not yet");
}

Status CudaBackend::add_bias(Tensor&, const Tensor&) {
  return Status::Unimplemented("add_bias on cuda: not yet");
}

Status CudaBackend::rms_norm_heads(Tensor&, const Tensor&, int64_t, float) {
  return Status::Unimplemented("rms_norm_heads on cuda: not yet");
}

Status CudaBackend::scale(Tensor&, float) {
  return Status::Unimplemented("scale on cuda: not yet");
}

Status CudaBackend::softcap(Tensor&, float) {
  return Status::Unimplemented("softcap on cuda: not yet");
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
