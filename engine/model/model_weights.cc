// Locating a decoder model's tensors by their Hugging Face names, with shapes from the config.
#include "engine/model/model_weights.h"

#include <string>

namespace quilt::engine {

Result<ModelWeightViews> find_model_weights(const TensorStore& store, const ModelConfig& cfg) {
  const int64_t hidden = cfg.hidden_size;
  const int64_t inter = cfg.intermediate_size;
  ModelWeightViews w{};
  QUILT_ASSIGN_OR_RETURN(w.embed, store.get("model.embed_tokens.weight", {cfg.vocab_size, hidden}));
  QUILT_ASSIGN_OR_RETURN(w.final_norm, store.get("model.norm.weight", {hidden}));
  if (cfg.tie_word_embeddings) {
    // Tied checkpoints usually omit lm_head.weight; when one is present transformers still ties
    // it to the embedding, so the embedding is what the model computes with.
    w.lm_head = w.embed;
  } else {
    auto head = store.get("lm_head.weight", {cfg.vocab_size, hidden});
    if (!head.ok()) {
      return head.status().with_context(
          "tie_word_embeddings is false, so lm_head.weight is needed");
    }
    w.lm_head = *head;
  }

  w.layers.reserve(static_cast<size_t>(cfg.num_layers));
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string attn = p + "self_attn.", mlp = p + "mlp.";
    LayerWeightViews l{};
    QUILT_ASSIGN_OR_RETURN(l.input_norm, store.get(p + "input_layernorm.weight", {hidden}));
    if (cfg.fused_projections) {
      QUILT_ASSIGN_OR_RETURN(
          l.qkv, store.get(attn + "qkv_proj.weight", {cfg.q_dim() + 2 * cfg.kv_dim(), hidden}));
      QUILT_ASSIGN_OR_RETURN(l.gate_up,
                             store.get(mlp + "gate_up_proj.weight", {2 * inter, hidden}));
    } else {
      QUILT_ASSIGN_OR_RETURN(l.q, store.get(attn + "q_proj.weight", {cfg.q_dim(), hidden}));
      QUILT_ASSIGN_OR_RETURN(l.k, store.get(attn + "k_proj.weight", {cfg.kv_dim(), hidden}));
      QUILT_ASSIGN_OR_RETURN(l.v, store.get(attn + "v_proj.weight", {cfg.kv_dim(), hidden}));
      QUILT_ASSIGN_OR_RETURN(l.gate, store.get(mlp + "gate_proj.weight", {inter, hidden}));
      QUILT_ASSIGN_OR_RETURN(l.up, store.get(mlp + "up_proj.weight", {inter, hidden}));
    }
    if (cfg.qkv_bias) {
      QUILT_ASSIGN_OR_RETURN(l.q_bias, store.get(attn + "q_proj.bias", {cfg.q_dim()}));
      QUILT_ASSIGN_OR_RETURN(l.k_bias, store.get(attn + "k_proj.bias", {cfg.kv_dim()}));
      QUILT_ASSIGN_OR_RETURN(l.v_bias, store.get(attn + "v_proj.bias", {cfg.kv_dim()}));
    }
    if (cfg.qk_norm) {
      QUILT_ASSIGN_OR_RETURN(l.q_norm, store.get(attn + "q_norm.weight", {cfg.head_dim}));
      QUILT_ASSIGN_OR_RETURN(l.k_norm, store.get(attn + "k_norm.weight", {cfg.head_dim}));
    }
    QUILT_ASSIGN_OR_RETURN(l.o, store.get(attn + "o_proj.weight", {hidden, cfg.q_dim()}));
    QUILT_ASSIGN_OR_RETURN(l.post_norm, store.get(p + "post_attention_layernorm.weight", {hidden}));
    if (cfg.sandwich_norms) {
      QUILT_ASSIGN_OR_RETURN(l.pre_ffn_norm,
                             store.get(p + "pre_feedforward_layernorm.weight", {hidden}));
      QUILT_ASSIGN_OR_RETURN(l.post_ffn_norm,
                             store.get(p + "post_feedforward_layernorm.weight", {hidden}));
    }
    QUILT_ASSIGN_OR_RETURN(l.down, store.get(mlp + "down_proj.weight", {hidden, inter}));
    w.layers.push_back(l);
  }
  return w;
}

}  // namespace quilt::engine
