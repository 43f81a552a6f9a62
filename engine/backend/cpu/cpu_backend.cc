// CpuBackend: float32 reference ops. OpenBLAS runs the GEMMs; everything else is loops.
#include "engine/backend/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

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
  QUILT_ASSIGN_OR_RETURN(Tensor t, allocate(rows, cols, DType::kF32));
  to_float32(src, std::span<float>(t.as<float>(), static_cast<size_t>(rows * cols)));
  return t;
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
  return Status::OK();
}

Status CpuBackend::write_lora_tables(std::span<const int32_t> page_indices,
                                     std::span<const kernels::sgmv::LoraModuleRef> modules) {
  if (modules.size() != lora_modules_.size()) {
    return Status::Internal("cpu backend: lora module table has the wrong size");
  }
  page_indices_.assign(page_indices.begin(), page_indices.end());
  std::copy(modules.begin(), modules.end(), lora_modules_.begin());
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
    std::memcpy(out.as<float>() + t * out.cols, table.as<float>() + ids[t] * table.cols,
                table.cols * sizeof(float));
  }
  return Status::OK();
}

Status CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const int64_t n = x.cols;
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* in = x.as<float>() + r * n;
    float* o = out.as<float>() + r * n;
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) sum += in[i] * in[i];
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) o[i] = weight.as<float>()[i] * (in[i] * inv);
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
  QUILT_RETURN_IF_ERROR(check_f32(w, "matmul weight"));
  if (x.cols != w.cols || out.cols != w.rows || out.rows != x.rows) {
    return Status::Internal("cpu backend: matmul shapes do not agree");
  }
  if (!x.contiguous() || !w.contiguous() || !out.contiguous()) {
    return Status::Internal("cpu backend: matmul takes contiguous tensors");
  }
  if (x.rows == 0) return Status::OK();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(x.rows),
              static_cast<int>(w.rows), static_cast<int>(x.cols), 1.0f, x.as<float>(),
              static_cast<int>(x.cols), w.as<float>(), static_cast<int>(w.cols), beta,
              out.as<float>(), static_cast<int>(out.cols));
  return Status::OK();
}

Status CpuBackend::add(Tensor& acc, const Tensor& x) {
  const int64_t n = acc.num_elements();
  float* a = acc.as<float>();
  const float* b = x.as<float>();
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  return Status::OK();
}

Status CpuBackend::rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) {
  const int64_t half = head_dim / 2;
  if (static_cast<int64_t>(table.inv_freq.size()) != half ||
      (table.long_from_position > 0 && static_cast<int64_t>(table.long_inv_freq.size()) != half)) {
    return Status::Internal("cpu backend: rope table does not match head_dim");
  }
  std::vector<float> cos_v(half), sin_v(half);
  for (int64_t t = 0; t < q.rows; ++t) {
    const float pos = static_cast<float>(step_->positions[t]);
    const std::vector<float>& inv_freq = table.freqs_at(step_->positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];  // float32 as transformers computes it
      cos_v[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * table.attention_scaling;
      sin_v[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * table.attention_scaling;
    }
    for (Tensor* x : {&q, &k}) {
      float* row = x->as<float>() + t * x->stride();
      for (int64_t h = 0; h < x->cols / head_dim; ++h) {
        float* v = row + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {  // rotate_half layout: pairs (i, i + half)
          const float a = v[i], b = v[i + half];
          v[i] = a * cos_v[i] - b * sin_v[i];
          v[i + half] = b * cos_v[i] + a * sin_v[i];
        }
      }
    }
  }
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

Status CpuBackend::attention(int32_t layer, const Tensor& q, int64_t num_heads,
                             const AttentionParams& params, Tensor& out) {
  const int64_t hd = kv_shape_.head_dim;
  const int64_t kv_heads = kv_shape_.num_kv_heads;
  const int64_t kv_dim = kv_heads * hd;
  const int64_t group = num_heads / kv_heads;
  const int64_t bs = kv_shape_.block_size;
  if (params.scale < 0 || params.softcap < 0 || params.sliding_window < 0) {
    return Status::Internal("cpu backend: negative attention parameter");
  }
  const float scale =
      params.scale > 0 ? params.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const float cap = params.softcap;
  const float* kc = k_cache(layer);
  const float* vc = v_cache(layer);
  std::vector<float> scores;
  for (const StepLayout::Sequence& seq : step_->sequences) {
    const int32_t* blocks = step_->block_tables.data() + seq.block_offset;
    scores.resize(seq.ctx_len);
    for (int32_t i = 0; i < seq.q_len; ++i) {
      const int64_t row = seq.q_start + i;
      const int64_t visible = seq.ctx_len - seq.q_len + i + 1;  // causal: itself and before
      // Sliding window: the query at position visible - 1 sees p with (visible - 1) - p < window.
      const int64_t first =
          params.sliding_window > 0 ? std::max<int64_t>(0, visible - params.sliding_window) : 0;
      for (int64_t h = 0; h < num_heads; ++h) {
        const float* qh = q.as<float>() + row * q.stride() + h * hd;
        const int64_t kvh = h / group;
        float max_score = -std::numeric_limits<float>::infinity();
        for (int64_t p = first; p < visible; ++p) {
          const float* kp = kc + (blocks[p / bs] * bs + p % bs) * kv_dim + kvh * hd;
          float s = 0.f;
          for (int64_t d = 0; d < hd; ++d) s += qh[d] * kp[d];
          s *= scale;
          if (cap > 0) s = cap * std::tanh(s / cap);
          scores[p] = s;
          max_score = std::max(max_score, scores[p]);
        }
        float denom = 0.f;
        for (int64_t p = first; p < visible; ++p) {
          scores[p] = std::exp(scores[p] - max_score);
          denom += scores[p];
        }
        float* o = out.as<float>() + row * out.cols + h * hd;
        std::fill(o, o + hd, 0.f);
        for (int64_t p = first; p < visible; ++p) {
          const float* vp = vc + (blocks[p / bs] * bs + p % bs) * kv_dim + kvh * hd;
          const float w = scores[p] / denom;
          for (int64_t d = 0; d < hd; ++d) o[d] += w * vp[d];
        }
      }
    }
  }
  return Status::OK();
}

template <typename Act>
Status CpuBackend::gated(const Tensor& gate, const Tensor& up, Tensor& out, Act act) {
  if (gate.rows != up.rows || gate.cols != up.cols || out.rows < gate.rows ||
      out.cols != gate.cols || !out.contiguous()) {
    return Status::Internal("cpu backend: gated activation shapes do not agree");
  }
  for (int64_t r = 0; r < gate.rows; ++r) {
    const float* g_row = gate.as<float>() + r * gate.stride();
    const float* u_row = up.as<float>() + r * up.stride();
    float* o_row = out.as<float>() + r * out.cols;
    for (int64_t c = 0; c < gate.cols; ++c) o_row[c] = act(g_row[c]) * u_row[c];
  }
  return Status::OK();
}

Status CpuBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  return gated(gate, up, out, [](float g) { return g / (1.0f + std::exp(-g)); });
}

Status CpuBackend::gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  // PyTorch's gelu(approximate="tanh"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return gated(gate, up, out, [](float g) {
    return 0.5f * g * (1.0f + std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g)));
  });
}

Status CpuBackend::add_bias(Tensor& y, const Tensor& bias) {
  QUILT_RETURN_IF_ERROR(check_f32(y, "add_bias output"));
  QUILT_RETURN_IF_ERROR(check_f32(bias, "add_bias bias"));
  if (bias.rows != 1 || bias.cols != y.cols || !y.contiguous()) {
    return Status::Internal("cpu backend: add_bias shapes do not agree");
  }
  for (int64_t r = 0; r < y.rows; ++r) {
    float* row = y.as<float>() + r * y.cols;
    for (int64_t c = 0; c < y.cols; ++c) row[c] += bias.as<float>()[c];
  }
  return Status::OK();
}

Status CpuBackend::rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "rms_norm_heads input"));
  QUILT_RETURN_IF_ERROR(check_f32(weight, "rms_norm_heads weight"));
  if (head_dim <= 0 || x.cols % head_dim != 0 || weight.num_elements() != head_dim) {
    return Status::Internal("cpu backend: rms_norm_heads shapes do not agree");
  }
  const float* w = weight.as<float>();
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t h = 0; h < x.cols / head_dim; ++h) {
      float* v = x.as<float>() + r * x.stride() + h * head_dim;
      float sum = 0.f;
      for (int64_t i = 0; i < head_dim; ++i) sum += v[i] * v[i];
      const float inv = 1.0f / std::sqrt(sum / static_cast<float>(head_dim) + eps);
      for (int64_t i = 0; i < head_dim; ++i) v[i] = w[i] * (v[i] * inv);
    }
  }
  return Status::OK();
}

Status CpuBackend::scale(Tensor& x, float s) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "scale input"));
  for (int64_t r = 0; r < x.rows; ++r) {
    float* row = x.as<float>() + r * x.stride();
    for (int64_t c = 0; c < x.cols; ++c) row[c] *= s;
  }
  return Status::OK();
}

Status CpuBackend::softcap(Tensor& x, float cap) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "softcap input"));
  if (!(cap > 0)) return Status::Internal("cpu backend: softcap must be positive");
  for (int64_t r = 0; r < x.rows; ++r) {
    float* row = x.as<float>() + r * x.stride();
    for (int64_t c = 0; c < x.cols; ++c) row[c] = cap * std::tanh(row[c] / cap);
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

Status CpuBackend::lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                               std::span<Tensor> v) {
  if (projs.size() > kernels::sgmv::kMaxFusedProjs || v.size() != projs.size()) {
    return Status::Internal("cpu backend: bad fused lora shrink");
  }
  kernels::sgmv::ShrinkArgs args{};
  args.x = x.as<float>();
  args.in_dim = x.cols;
  args.layer = layer;
  args.num_projs = static_cast<int32_t>(projs.size());
  for (size_t p = 0; p < projs.size(); ++p) {
    args.projs[p] = projs[p];
    args.v[p] = v[p].as<float>();
  }
  kernels::sgmv::shrink_cpu(lora_weights(), lora_batch(), args);
  return Status::OK();
}

Status CpuBackend::lora_expand(std::span<const Tensor> v, int32_t layer,
                               std::span<const ProjectionSlice> slices, Tensor& y) {
  if (slices.size() > kernels::sgmv::kMaxFusedProjs || v.size() != slices.size() ||
      !y.contiguous()) {
    return Status::Internal("cpu backend: bad fused lora expand");
  }
  for (size_t i = 0; i < slices.size(); ++i) {
    const ProjectionSlice& s = slices[i];
    if (s.col < 0 || s.cols <= 0 || s.col + s.cols > y.cols) {
      return Status::Internal("cpu backend: lora expand slice outside the output row");
    }
    kernels::sgmv::ExpandArgs args{v[i].as<float>(), y.as<float>() + s.col, s.cols, layer, s.proj};
    args.y_row_stride = y.cols;  // the slice inside the fused row, added in place
    kernels::sgmv::expand_cpu(lora_weights(), lora_batch(), args);
  }
  return Status::OK();
}

}  // namespace quilt::engine
