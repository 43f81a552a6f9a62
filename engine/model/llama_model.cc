// LlamaModel: weight upload and the decoder stack over one mixed prefill/decode step.
#include "engine/model/llama_model.h"

#include "engine/model/lora_weights.h"
#include "engine/model/model_weights.h"

namespace quilt::engine {

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const ModelConfig& cfg,
                                                     const TensorStore& store, Backend& backend,
                                                     int32_t max_step_tokens,
                                                     int32_t max_lora_rank) {
  QUILT_ASSIGN_OR_RETURN(ModelWeightViews views, find_model_weights(store, cfg));
  std::unique_ptr<LlamaModel> m(new LlamaModel(cfg, backend));
  m->rope_ = make_rope_table(cfg);
  m->max_step_tokens_ = max_step_tokens;
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  auto load = [&](const TensorView* v, int64_t rows, int64_t cols) {
    return backend.load_weight(*v, rows, cols);
  };
  QUILT_ASSIGN_OR_RETURN(m->embed_, load(views.embed, cfg.vocab_size, hidden));
  QUILT_ASSIGN_OR_RETURN(m->final_norm_, load(views.final_norm, 1, hidden));
  if (views.lm_head == views.embed) {
    m->lm_head_ = m->embed_;  // tied: one copy in memory
  } else {
    QUILT_ASSIGN_OR_RETURN(m->lm_head_, load(views.lm_head, cfg.vocab_size, hidden));
  }
  for (const LayerWeightViews& lv : views.layers) {
    Layer l;
    QUILT_ASSIGN_OR_RETURN(l.input_norm, load(lv.input_norm, 1, hidden));
    QUILT_ASSIGN_OR_RETURN(l.q, load(lv.q, cfg.q_dim(), hidden));
    QUILT_ASSIGN_OR_RETURN(l.k, load(lv.k, cfg.kv_dim(), hidden));
    QUILT_ASSIGN_OR_RETURN(l.v, load(lv.v, cfg.kv_dim(), hidden));
    QUILT_ASSIGN_OR_RETURN(l.o, load(lv.o, hidden, cfg.q_dim()));
    QUILT_ASSIGN_OR_RETURN(l.post_norm, load(lv.post_norm, 1, hidden));
    QUILT_ASSIGN_OR_RETURN(l.gate, load(lv.gate, inter, hidden));
    QUILT_ASSIGN_OR_RETURN(l.up, load(lv.up, inter, hidden));
    QUILT_ASSIGN_OR_RETURN(l.down, load(lv.down, hidden, inter));
    m->layers_.push_back(std::move(l));
  }

  Activations& a = m->act_;
  const int64_t t = max_step_tokens;
  const DType dt = backend.compute_dtype();
  QUILT_ASSIGN_OR_RETURN(a.h, backend.allocate(t, hidden, dt));
  QUILT_ASSIGN_OR_RETURN(a.x, backend.allocate(t, hidden, dt));
  QUILT_ASSIGN_OR_RETURN(a.q, backend.allocate(t, cfg.q_dim(), dt));
  QUILT_ASSIGN_OR_RETURN(a.k, backend.allocate(t, cfg.kv_dim(), dt));
  QUILT_ASSIGN_OR_RETURN(a.v, backend.allocate(t, cfg.kv_dim(), dt));
  QUILT_ASSIGN_OR_RETURN(a.attn, backend.allocate(t, cfg.q_dim(), dt));
  QUILT_ASSIGN_OR_RETURN(a.proj, backend.allocate(t, hidden, dt));
  QUILT_ASSIGN_OR_RETURN(a.gate, backend.allocate(t, inter, dt));
  QUILT_ASSIGN_OR_RETURN(a.up, backend.allocate(t, inter, dt));
  QUILT_ASSIGN_OR_RETURN(a.act, backend.allocate(t, inter, dt));
  QUILT_ASSIGN_OR_RETURN(a.last, backend.allocate(t, hidden, dt));
  // Logits and the rank-sized LoRA intermediate stay float32 whatever the backend computes in:
  // greedy picks between logits closer than a bf16 step, and v feeds every expand of a layer.
  QUILT_ASSIGN_OR_RETURN(a.logits, backend.allocate(t, cfg.vocab_size, DType::kF32));
  for (Tensor& v : a.lora_v) {
    QUILT_ASSIGN_OR_RETURN(v, backend.allocate(t, std::max<int32_t>(max_lora_rank, 1), DType::kF32));
  }
  return m;
}

// Adds the LoRA deltas of every projection in `outputs` (all reading x) to their outputs:
// one fused shrink, then one expand per projection.
Status LlamaModel::add_lora(const StepLayout& layout, int32_t layer, const Tensor& x,
                            std::initializer_list<std::pair<int32_t, Tensor*>> outputs) {
  if (layout.max_rank == 0) return Status::OK();
  const int64_t n = layout.num_tokens();
  int32_t projs[3];
  Tensor v[3];
  int32_t count = 0;
  for (const auto& [proj, out] : outputs) {
    projs[count] = proj;
    v[count] = act_.lora_v[count].head(n);
    v[count].cols = layout.max_rank;
    ++count;
  }
  QUILT_RETURN_IF_ERROR(backend_.lora_shrink(x, layer, std::span(projs, count), std::span(v, count)));
  count = 0;
  for (const auto& [proj, out] : outputs) {
    QUILT_RETURN_IF_ERROR(backend_.lora_expand(v[count++], layer, proj, *out));
  }
  return Status::OK();
}

Status LlamaModel::forward(const StepLayout& layout, std::vector<float>& logits) {
  const int64_t n = layout.num_tokens();
  if (n == 0 || n > max_step_tokens_) return Status::Internal("step size out of range");
  Tensor h = act_.h.head(n), x = act_.x.head(n), q = act_.q.head(n), k = act_.k.head(n),
         v = act_.v.head(n), attn = act_.attn.head(n), proj = act_.proj.head(n),
         gate = act_.gate.head(n), up = act_.up.head(n), mlp = act_.act.head(n);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  constexpr auto P = [](Projection p) { return static_cast<int32_t>(p); };
  Backend& b = backend_;

  QUILT_RETURN_IF_ERROR(b.embedding(embed_, h));
  for (int32_t i = 0; i < static_cast<int32_t>(layers_.size()); ++i) {
    const Layer& l = layers_[i];
    QUILT_RETURN_IF_ERROR(b.rms_norm(h, l.input_norm, eps, x));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.q, q));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.k, k));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.v, v));
    QUILT_RETURN_IF_ERROR(add_lora(layout, i, x,
                                   {{P(Projection::kQ), &q}, {P(Projection::kK), &k}, {P(Projection::kV), &v}}));
    QUILT_RETURN_IF_ERROR(b.rope(rope_, cfg_.head_dim, q, k));
    QUILT_RETURN_IF_ERROR(b.kv_store(i, k, v));
    QUILT_RETURN_IF_ERROR(b.attention(i, q, cfg_.num_heads, attn));
    QUILT_RETURN_IF_ERROR(b.matmul(attn, l.o, proj));
    QUILT_RETURN_IF_ERROR(add_lora(layout, i, attn, {{P(Projection::kO), &proj}}));
    QUILT_RETURN_IF_ERROR(b.add(h, proj));

    QUILT_RETURN_IF_ERROR(b.rms_norm(h, l.post_norm, eps, x));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.gate, gate));
    QUILT_RETURN_IF_ERROR(b.matmul(x, l.up, up));
    QUILT_RETURN_IF_ERROR(
        add_lora(layout, i, x, {{P(Projection::kGate), &gate}, {P(Projection::kUp), &up}}));
    QUILT_RETURN_IF_ERROR(b.silu_mul(gate, up, mlp));
    QUILT_RETURN_IF_ERROR(b.matmul(mlp, l.down, proj));
    QUILT_RETURN_IF_ERROR(add_lora(layout, i, mlp, {{P(Projection::kDown), &proj}}));
    QUILT_RETURN_IF_ERROR(b.add(h, proj));
  }

  const int64_t rows = static_cast<int64_t>(layout.logit_rows.size());
  logits.resize(static_cast<size_t>(rows * cfg_.vocab_size));
  if (rows == 0) return Status::OK();
  Tensor last = act_.last.head(rows), out = act_.logits.head(rows), normed = act_.x.head(rows);
  QUILT_RETURN_IF_ERROR(b.gather_rows(h, layout.logit_rows, last));
  QUILT_RETURN_IF_ERROR(b.rms_norm(last, final_norm_, eps, normed));
  QUILT_RETURN_IF_ERROR(b.matmul(normed, lm_head_, out));
  return b.download(out, logits);
}

}  // namespace quilt::engine
