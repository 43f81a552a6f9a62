// Locating a Llama-family model's tensors by their Hugging Face names, with shapes from the config.
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
    LayerWeightViews l{};
    QUILT_ASSIGN_OR_RETURN(l.input_norm, store.get(p + "input_layernorm.weight", {hidden}));
    QUILT_ASSIGN_OR_RETURN(l.q, store.get(p + "self_attn.q_proj.weight", {cfg.q_dim(), hidden}));
    QUILT_ASSIGN_OR_RETURN(l.k, store.get(p + "self_attn.k_proj.weight", {cfg.kv_dim(), hidden}));
    QUILT_ASSIGN_OR_RETURN(l.v, store.get(p + "self_attn.v_proj.weight", {cfg.kv_dim(), hidden}));
    QUILT_ASSIGN_OR_RETURN(l.o, store.get(p + "self_attn.o_proj.weight", {hidden, cfg.q_dim()}));
    QUILT_ASSIGN_OR_RETURN(l.post_norm, store.get(p + "post_attention_layernorm.weight", {hidden}));
    QUILT_ASSIGN_OR_RETURN(l.gate, store.get(p + "mlp.gate_proj.weight", {inter, hidden}));
    QUILT_ASSIGN_OR_RETURN(l.up, store.get(p + "mlp.up_proj.weight", {inter, hidden}));
    QUILT_ASSIGN_OR_RETURN(l.down, store.get(p + "mlp.down_proj.weight", {hidden, inter}));
    w.layers.push_back(l);
  }
  return w;
}

}  // namespace quilt::engine
