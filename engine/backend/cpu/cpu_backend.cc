// CpuBackend: float32 reference ops. The GEMMs are ours (gemm.h, kernels picked from CPUID).
#include "engine/backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/backend/cpu/cpu_weights.h"
#include "engine/backend/cpu/gemm.h"
#include "engine/model/rope.h"
#include "engine/sampling/sampler.h"

namespace quilt::engine {
namespace {

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t floats) : data_(floats) {}
  void* data() override { return data_.data(); }
  size_t bytes() const override { return data_.size() * sizeof(float); }

 private:
  std::vector<float> data_;
};

Status check_f32(const Tensor& t, const char* what) {
  if (t.dtype != DType::kF32 || t.data == nullptr) {
    return Status::Internal(std::string("cpu backend: ") + what + " is not a float32 tensor");
  }
  return Status::OK();
}

}  // namespace

Result<Tensor> CpuBackend::allocate(int64_t rows, int64_t cols, DType dtype) {
  if (rows < 0 || cols < 0) return Status::Internal("cpu backend: negative tensor shape");
  // Every cpu op computes in float32, so float32 is the only dtype it keeps.
  if (dtype != DType::kF32) {
    return Status::Internal(std::string("cpu backend: cannot allocate ") + dtype_name(dtype) +
                            " tensors (float32 only)");
  }
  auto buffer = std::make_shared<HostBuffer>(static_cast<size_t>(rows * cols));
  Tensor t;
  t.data = buffer->data();
  t.buffer = std::move(buffer);
  t.rows = rows;
  t.cols = cols;
  return t;
}

Result<Tensor> CpuBackend::load_weight(const TensorView& src, int64_t rows, int64_t cols) {
  if (src.num_elements() != rows * cols) {
    return Status::Internal("cpu backend: " + src.name + " does not hold " +
                            std::to_string(rows) + "x" + std::to_string(cols) + " elements");
  }
  return cpu::make_weight(src, rows, cols, quantize_int8_);  // bf16/int8 matrices: cpu_weights.h
}

Status CpuBackend::download(const Tensor& src, std::span<float> dst) {
  QUILT_RETURN_IF_ERROR(check_f32(src, "download source"));
  if (dst.size() < static_cast<size_t>(src.num_elements())) {
    return Status::Internal("cpu backend: download target too small");
  }
  std::memcpy(dst.data(), src.data, src.num_elements() * sizeof(float));
  return Status::OK();
}

Status CpuBackend::init_kv_cache(const KvCacheShape& shape) {
  kv_shape_ = shape;
  layer_stride_ = 2LL * shape.num_blocks * shape.block_size * shape.num_kv_heads * shape.head_dim;
  kv_.assign(static_cast<size_t>(layer_stride_ * shape.num_layers), 0.f);
  return Status::OK();
}

Status CpuBackend::init_lora_pool(const LoraPoolShape& shape) {
  lora_shape_ = shape;
  if (shape.in_kv_cache) {  // one pool: the pages are the KV cache's memory
    if (static_cast<size_t>(shape.num_pages) * shape.page_elems != kv_.size()) {
      return Status::Internal("cpu backend: a lora pool in the KV cache must cover it exactly");
    }
    lora_pool_.clear();
    lora_base_ = kv_.data();
  } else {
    lora_pool_.assign(static_cast<size_t>(shape.num_pages * shape.page_elems), 0.f);
    lora_base_ = lora_pool_.data();
  }
  page_indices_.clear();
  lora_dense_.clear();
  lora_modules_.assign(static_cast<size_t>(shape.max_slots) * shape.num_layers * 7,
                       kernels::sgmv::LoraModuleRef{0, 0.f, 0, 0});
  return Status::OK();
}

Status CpuBackend::write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) {
  const int64_t pe = lora_shape_.page_elems;
  if (data.size() != pages.size() * static_cast<size_t>(pe)) {
    return Status::Internal("cpu backend: lora page data does not fill its pages");
  }
  for (size_t i = 0; i < pages.size(); ++i) {
    if (pages[i] < 0 || pages[i] >= lora_shape_.num_pages) {
      return Status::Internal("cpu backend: lora page index out of range");
    }
    std::memcpy(lora_base_ + pages[i] * pe, data.data() + i * pe, pe * sizeof(float));
  }
  lora_dense_.clear();  // the dense copies (cpu_lora.cc) may hold these pages' old contents
  return Status::OK();
}

Status CpuBackend::write_lora_tables(std::span<const int32_t> page_indices,
                                     std::span<const kernels::sgmv::LoraModuleRef> modules) {
  if (modules.size() != lora_modules_.size()) {
    return Status::Internal("cpu backend: lora module table has the wrong size");
  }
  page_indices_.assign(page_indices.begin(), page_indices.end());
  std::copy(modules.begin(), modules.end(), lora_modules_.begin());
  lora_dense_.clear();
  return Status::OK();
}

Status CpuBackend::begin_step(const StepLayout& layout) {
  step_ = &layout;
  return Status::OK();
}

Status CpuBackend::embedding(const Tensor& table, Tensor& out) {
  const auto& ids = step_->token_ids;
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= table.rows) return Status::Internal("cpu backend: token id out of range");
    cpu::widen_row(table, ids[t], out.as<float>() + t * out.cols);  // f32, bf16 or int8 table
  }
  return Status::OK();
}

Status CpuBackend::matmul(const Tensor& x, const Tensor& w, Tensor& out) {
  return gemm(x, w, out, 0.0f);
}

Status CpuBackend::matmul_add(const Tensor& x, const Tensor& w, Tensor& out) {
  return gemm(x, w, out, 1.0f);
}

Status CpuBackend::gemm(const Tensor& x, const Tensor& w, Tensor& out, float beta) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "matmul input"));
  QUILT_RETURN_IF_ERROR(check_f32(out, "matmul output"));
  QUILT_ASSIGN_OR_RETURN(cpu::GemmWeights weights, cpu::gemm_weights(w));
  if (x.cols != w.cols || out.cols != w.rows || out.rows != x.rows) {
    return Status::Internal("cpu backend: matmul shapes do not agree");
  }
  if (x.rows == 0) return Status::OK();
  // Our kernels (gemm.h), picked from CPUID: q/k/v and gate/up are one call each (fused weights).
  cpu::gemm(x.rows, w.rows, x.cols, x.as<float>(), x.stride(), weights, out.as<float>(),
            out.stride(), beta);
  return Status::OK();
}

Status CpuBackend::kv_store(int32_t layer, const Tensor& k, const Tensor& v) {
  const int64_t kv_dim = k.cols;
  float* kc = k_cache(layer);
  float* vc = v_cache(layer);
  for (int64_t t = 0; t < k.rows; ++t) {
    const int64_t slot = step_->kv_slots[t];
    std::memcpy(kc + slot * kv_dim, k.as<float>() + t * k.stride(), kv_dim * sizeof(float));
    std::memcpy(vc + slot * kv_dim, v.as<float>() + t * v.stride(), kv_dim * sizeof(float));
  }
  return Status::OK();
}

Status CpuBackend::gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(out.as<float>() + i * out.cols, x.as<float>() + rows[i] * x.cols,
                x.cols * sizeof(float));
  }
  return Status::OK();
}

Status CpuBackend::sample(const Tensor& logits, std::span<const SampleSpec> rows,
                          std::span<SampledToken> out) {
  QUILT_RETURN_IF_ERROR(check_f32(logits, "sample logits"));
  if (logits.rows < static_cast<int64_t>(rows.size()) || out.size() != rows.size() ||
      !logits.contiguous()) {
    return Status::Internal("cpu backend: sample shapes do not agree");
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::span<const float> row(logits.as<float>() + r * logits.cols,
                                     static_cast<size_t>(logits.cols));
    out[r] = sample_logits(row, rows[r], sample_order_, sample_probs_);
  }
  return Status::OK();
}

kernels::sgmv::PagedLoraWeights<float> CpuBackend::lora_weights() const {
  return {lora_base_, lora_shape_.page_elems, page_indices_.data(), lora_modules_.data(),
          lora_shape_.num_layers, 7};
}

kernels::sgmv::LoraBatch CpuBackend::lora_batch() const {
  return {step_->num_tokens(), step_->token_slots.data(),
          static_cast<int32_t>(step_->segment_slots.size()), step_->segment_starts.data(),
          step_->segment_slots.data(), step_->max_rank};
}

}  // namespace quilt::engine
