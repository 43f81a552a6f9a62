// LlamaModel: weight upload and the decoder stack over one mixed prefill/decode step, for every
// supported architecture.
#include "engine/model/llama_model.h"

#include <cmath>
#include <cstring>

#include "engine/model/lora_weights.h"
#include "engine/model/model_weights.h"

namespace quilt::engine {

namespace {

// The rows of `parts` stacked into one [Σ rows, cols] weight: q/k/v (or gate/up) as one GEMM.
// `storage` keeps the stacked bytes alive until the backend has copied them.
TensorView stack_rows(std::initializer_list<const TensorView*> parts, std::vector<std::byte>& storage) {
  TensorView out;
  out.dtype = (*parts.begin())->dtype;
  int64_t rows = 0, cols = 0;
  for (const TensorView* p : parts) {
    if (p->dtype != out.dtype) out.dtype = DType::kF32;  // mixed files: widen, exactly
    rows += p->shape.empty() ? 0 : p->shape[0];
    cols = p->num_elements() / std::max<int64_t>(1, p->shape.empty() ? 1 : p->shape[0]);
    out.name += (out.name.empty() ? "" : " + ") + p->name;
  }
  const int64_t elem = dtype_size(out.dtype);
  storage.resize(static_cast<size_t>(rows * cols * elem));
  std::byte* dst = storage.data();
  for (const TensorView* p : parts) {
    const size_t bytes = static_cast<size_t>(p->num_elements() * elem);
    if (p->dtype == out.dtype) {
      std::memcpy(dst, p->data, bytes);
    } else {
      to_float32(*p, std::span(reinterpret_cast<float*>(dst), static_cast<size_t>(p->num_elements())));
    }
    dst += bytes;
  }
  out.shape = {rows, cols};
  out.data = storage.data();
  out.file = (*parts.begin())->file;
  return out;
}

// A norm weight as the model multiplies by it: Gemma stores w and applies (1 + w), folded here
// in float32 as transformers computes it. `storage` holds the folded values until loaded.
TensorView norm_weight(const TensorView& w, bool offset, std::vector<float>& storage) {
  if (!offset) return w;
  storage = to_float32(w);
  for (float& v : storage) v = 1.0f + v;
  TensorView out = w;
  out.dtype = DType::kF32;
  out.data = reinterpret_cast<const std::byte*>(storage.data());
  return out;
}

}  // namespace

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const ModelConfig& cfg,
                                                     const TensorStore& store, Backend& backend,
                                                     int32_t max_step_tokens,
                                                     int32_t max_lora_rank) {
  QUILT_ASSIGN_OR_RETURN(ModelWeightViews views, find_model_weights(store, cfg));
  std::unique_ptr<LlamaModel> m(new LlamaModel(cfg, backend));
  m->rope_ = make_rope_table(cfg, cfg.rope);
  if (cfg.has_local_rope) m->local_rope_ = make_rope_table(cfg, cfg.local_rope);
  m->max_step_tokens_ = max_step_tokens;
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  auto load = [&](const TensorView* v, int64_t rows, int64_t cols) {
    return backend.load_weight(*v, rows, cols);
  };
  std::vector<float> folded;
  auto load_norm = [&](const TensorView* v, int64_t n) {
    const TensorView w = norm_weight(*v, cfg.norm_weight_offset, folded);
    return backend.load_weight(w, 1, n);
  };
  QUILT_ASSIGN_OR_RETURN(m->embed_, load(views.embed, cfg.vocab_size, hidden));
  QUILT_ASSIGN_OR_RETURN(m->final_norm_, load_norm(views.final_norm, hidden));
  if (views.lm_head == views.embed) {
    m->lm_head_ = m->embed_;  // tied: one copy in memory
  } else {
    QUILT_ASSIGN_OR_RETURN(m->lm_head_, load(views.lm_head, cfg.vocab_size, hidden));
  }
  const int64_t qkv_dim = cfg.q_dim() + 2 * cfg.kv_dim();
  std::vector<std::byte> stacked;
  for (size_t i = 0; i < views.layers.size(); ++i) {
    const LayerWeightViews& lv = views.layers[i];
    Layer l;
    QUILT_ASSIGN_OR_RETURN(l.input_norm, load_norm(lv.input_norm, hidden));
    // Phi-3 stores q/k/v and gate/up fused already, in the order the stacked layout uses.
    const TensorView qkv = lv.qkv ? *lv.qkv : stack_rows({lv.q, lv.k, lv.v}, stacked);
    QUILT_ASSIGN_OR_RETURN(l.qkv, load(&qkv, qkv_dim, hidden));
    if (lv.q_bias != nullptr) {
      const TensorView bias = stack_rows({lv.q_bias, lv.k_bias, lv.v_bias}, stacked);
      QUILT_ASSIGN_OR_RETURN(l.qkv_bias, load(&bias, 1, qkv_dim));
    }
    if (lv.q_norm != nullptr) {
      QUILT_ASSIGN_OR_RETURN(l.q_norm, load_norm(lv.q_norm, cfg.head_dim));
      QUILT_ASSIGN_OR_RETURN(l.k_norm, load_norm(lv.k_norm, cfg.head_dim));
    }
    QUILT_ASSIGN_OR_RETURN(l.o, load(lv.o, hidden, cfg.q_dim()));
    if (cfg.sandwich_norms) {
      QUILT_ASSIGN_OR_RETURN(l.attn_out_norm, load_norm(lv.post_norm, hidden));
      QUILT_ASSIGN_OR_RETURN(l.mlp_norm, load_norm(lv.pre_ffn_norm, hidden));
      QUILT_ASSIGN_OR_RETURN(l.mlp_out_norm, load_norm(lv.post_ffn_norm, hidden));
    } else {
      QUILT_ASSIGN_OR_RETURN(l.mlp_norm, load_norm(lv.post_norm, hidden));
    }
    const TensorView gate_up = lv.gate_up ? *lv.gate_up : stack_rows({lv.gate, lv.up}, stacked);
    QUILT_ASSIGN_OR_RETURN(l.gate_up, load(&gate_up, 2 * inter, hidden));
    QUILT_ASSIGN_OR_RETURN(l.down, load(lv.down, hidden, inter));
    if (cfg.query_pre_attn_scalar > 0) {
      l.attention.scale = static_cast<float>(std::pow(cfg.query_pre_attn_scalar, -0.5));
    }
    l.attention.softcap = static_cast<float>(cfg.attn_logit_softcap);
    const auto layer = static_cast<int64_t>(i);
    if (cfg.is_sliding(layer)) {
      l.attention.sliding_window = static_cast<int32_t>(cfg.sliding_window);
    }
    l.rope = cfg.has_local_rope && cfg.is_sliding(layer) ? &m->local_rope_ : &m->rope_;
    m->layers_.push_back(std::move(l));
  }

  Activations& a = m->act_;
  const int64_t t = max_step_tokens;
  const DType dt = backend.compute_dtype();
  QUILT_ASSIGN_OR_RETURN(a.h, backend.allocate(t, hidden, dt));
  QUILT_ASSIGN_OR_RETURN(a.x, backend.allocate(t, hidden, dt));
  QUILT_ASSIGN_OR_RETURN(a.qkv, backend.allocate(t, qkv_dim, dt));
  QUILT_ASSIGN_OR_RETURN(a.attn, backend.allocate(t, cfg.q_dim(), dt));
  QUILT_ASSIGN_OR_RETURN(a.gate_up, backend.allocate(t, 2 * inter, dt));
  QUILT_ASSIGN_OR_RETURN(a.act, backend.allocate(t, inter, dt));
  if (cfg.sandwich_norms) {
    QUILT_ASSIGN_OR_RETURN(a.proj_out, backend.allocate(t, hidden, dt));
  }
  QUILT_ASSIGN_OR_RETURN(a.last, backend.allocate(t, hidden, dt));
  // Logits and the rank-sized LoRA intermediate stay float32 whatever the backend computes in:
  // greedy picks between logits closer than a bf16 step, and v feeds every expand of a layer.
  QUILT_ASSIGN_OR_RETURN(a.logits, backend.allocate(t, cfg.vocab_size, DType::kF32));
  for (Tensor& v : a.lora_v) {
    QUILT_ASSIGN_OR_RETURN(v, backend.allocate(t, std::max<int32_t>(max_lora_rank, 1), DType::kF32));
  }
  return m;
}

Status LlamaModel::add_lora(const StepLayout& layout, int32_t layer, const Tensor& x, Tensor& y,
                            std::initializer_list<ProjectionSlice> slices) {
  if (layout.max_rank == 0) return Status::OK();
  const int64_t n = layout.num_tokens();
  int32_t projs[kernels::sgmv::kMaxFusedProjs];
  Tensor v[kernels::sgmv::kMaxFusedProjs];
  size_t count = 0;
  for (const ProjectionSlice& s : slices) {
    projs[count] = s.proj;
    v[count] = act_.lora_v[count].head(n);
    v[count].cols = layout.max_rank;
    ++count;
  }
  QUILT_RETURN_IF_ERROR(backend_.lora_shrink(x, layer, std::span(projs, count), std::span(v, count)));
  return backend_.lora_expand(std::span<const Tensor>(v, count), layer,
                              std::span<const ProjectionSlice>(slices.begin(), slices.size()), y);
}

Status LlamaModel::forward(const StepLayout& layout, std::vector<float>& logits) {
  QUILT_ASSIGN_OR_RETURN(Tensor out, forward(layout));
  logits.resize(static_cast<size_t>(out.num_elements()));
  if (out.rows == 0) return Status::OK();
  return backend_.download(out, logits);
}

Result<Tensor> LlamaModel::forward(const StepLayout& layout) {
  const int64_t n = layout.num_tokens();
  if (n == 0 || n > max_step_tokens_) return Status::Internal("step size out of range");
  const int64_t hidden = cfg_.hidden_size, inter = cfg_.intermediate_size;
  const int64_t q_dim = cfg_.q_dim(), kv_dim = cfg_.kv_dim(), head_dim = cfg_.head_dim;
  Tensor h = act_.h.head(n), x = act_.x.head(n), qkv = act_.qkv.head(n),
         attn = act_.attn.head(n), gate_up = act_.gate_up.head(n), mlp = act_.act.head(n),
         proj_out = act_.proj_out.head(n);
  // Views into the fused outputs: q | k | v and gate | up.
  Tensor q = qkv.columns(0, q_dim), k = qkv.columns(q_dim, kv_dim),
         v = qkv.columns(q_dim + kv_dim, kv_dim);
  const Tensor gate = gate_up.columns(0, inter), up = gate_up.columns(inter, inter);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  constexpr auto P = [](Projection p) { return static_cast<int32_t>(p); };
  Backend& b = backend_;

  QUILT_RETURN_IF_ERROR(b.embedding(embed_, h));
  if (cfg_.embedding_scale > 0) QUILT_RETURN_IF_ERROR(b.scale(h, cfg_.embedding_scale));
  for (int32_t i = 0; i < static_cast<int32_t>(layers_.size()); ++i) {
    const Layer& l = layers_[i];
    QUILT_RETURN_IF_ERROR(b.rms_norm(h, l.input_norm, eps, x));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.qkv, qkv));
    if (l.qkv_bias.data != nullptr) QUILT_RETURN_IF_ERROR(b.add_bias(qkv, l.qkv_bias));
    QUILT_RETURN_IF_ERROR(add_lora(layout, i, x, qkv,
                                   {{P(Projection::kQ), 0, q_dim},
                                    {P(Projection::kK), q_dim, kv_dim},
                                    {P(Projection::kV), q_dim + kv_dim, kv_dim}}));
    if (l.q_norm.data != nullptr) {
      QUILT_RETURN_IF_ERROR(b.rms_norm_heads(q, l.q_norm, head_dim, eps));
      QUILT_RETURN_IF_ERROR(b.rms_norm_heads(k, l.k_norm, head_dim, eps));
    }
    QUILT_RETURN_IF_ERROR(b.rope(*l.rope, head_dim, q, k));
    QUILT_RETURN_IF_ERROR(b.kv_store(i, k, v));
    QUILT_RETURN_IF_ERROR(b.attention(i, q, cfg_.num_heads, l.attention, attn));
    if (l.attn_out_norm.data != nullptr) {
      // Gemma normalizes the attention output before the residual add: h += norm(attn · oᵀ).
      QUILT_RETURN_IF_ERROR(b.matmul(attn, l.o, proj_out));
      QUILT_RETURN_IF_ERROR(add_lora(layout, i, attn, proj_out, {{P(Projection::kO), 0, hidden}}));
      QUILT_RETURN_IF_ERROR(b.rms_norm(proj_out, l.attn_out_norm, eps, x));
      QUILT_RETURN_IF_ERROR(b.add(h, x));
    } else {
      // The residual add rides in the projection's GEMM (h += attn · oᵀ) and LoRA expand.
      QUILT_RETURN_IF_ERROR(b.matmul_add(attn, l.o, h));
      QUILT_RETURN_IF_ERROR(add_lora(layout, i, attn, h, {{P(Projection::kO), 0, hidden}}));
    }

    QUILT_RETURN_IF_ERROR(b.rms_norm(h, l.mlp_norm, eps, x));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.gate_up, gate_up));
    QUILT_RETURN_IF_ERROR(add_lora(layout, i, x, gate_up,
                                   {{P(Projection::kGate), 0, inter}, {P(Projection::kUp), inter, inter}}));
    if (cfg_.activation == Activation::kGeluTanh) {
      QUILT_RETURN_IF_ERROR(b.gelu_tanh_mul(gate, up, mlp));
    } else {
      QUILT_RETURN_IF_ERROR(b.silu_mul(gate, up, mlp));
    }
    if (l.mlp_out_norm.data != nullptr) {
      QUILT_RETURN_IF_ERROR(b.matmul(mlp, l.down, proj_out));
      QUILT_RETURN_IF_ERROR(
          add_lora(layout, i, mlp, proj_out, {{P(Projection::kDown), 0, hidden}}));
      QUILT_RETURN_IF_ERROR(b.rms_norm(proj_out, l.mlp_out_norm, eps, x));
      QUILT_RETURN_IF_ERROR(b.add(h, x));
    } else {
      QUILT_RETURN_IF_ERROR(b.matmul_add(mlp, l.down, h));
      QUILT_RETURN_IF_ERROR(add_lora(layout, i, mlp, h, {{P(Projection::kDown), 0, hidden}}));
    }
  }

  const int64_t rows = static_cast<int64_t>(layout.logit_rows.size());
  Tensor last = act_.last.head(rows), out = act_.logits.head(rows), normed = act_.x.head(rows);
  if (rows == 0) return out;
  QUILT_RETURN_IF_ERROR(b.gather_rows(h, layout.logit_rows, last));
  QUILT_RETURN_IF_ERROR(b.rms_norm(last, final_norm_, eps, normed));
  QUILT_RETURN_IF_ERROR(b.matmul(normed, lm_head_, out));
  if (cfg_.final_logit_softcap > 0) {
    QUILT_RETURN_IF_ERROR(b.softcap(out, static_cast<float>(cfg_.final_logit_softcap)));
  }
  return out;
}

}  // namespace quilt::engine
