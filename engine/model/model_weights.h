// The base model's tensors by role, validated against its config. Views into the mapped files.
#pragma once

#include <memory>
#include <vector>

#include "engine/model/model_config.h"
#include "engine/weights/safetensors.h"

namespace quilt::engine {

// Roles a layer's tensors play; nullptr where the architecture has none.
struct LayerWeightViews {
  const TensorView* input_norm;  // [hidden]
  // Separate projections, or (cfg.fused_projections, Phi-3) qkv = [q | k | v rows, hidden].
  const TensorView* q;           // [num_heads*head_dim, hidden]
  const TensorView* k;           // [num_kv_heads*head_dim, hidden]
  const TensorView* v;           // [num_kv_heads*head_dim, hidden]
  const TensorView* qkv;         // [q_dim + 2*kv_dim, hidden]
  const TensorView* q_bias;      // [q_dim] (cfg.qkv_bias)
  const TensorView* k_bias;      // [kv_dim]
  const TensorView* v_bias;      // [kv_dim]
  const TensorView* q_norm;      // [head_dim] (cfg.qk_norm)
  const TensorView* k_norm;      // [head_dim]
  const TensorView* o;           // [hidden, num_heads*head_dim]
  // post_attention_layernorm: the pre-MLP norm, or with cfg.sandwich_norms (Gemma) the norm of
  // the attention output, and then pre_ffn_norm / post_ffn_norm surround the MLP.
  const TensorView* post_norm;   // [hidden]
  const TensorView* pre_ffn_norm;   // [hidden] (cfg.sandwich_norms)
  const TensorView* post_ffn_norm;  // [hidden] (cfg.sandwich_norms)
  // Separate, or (cfg.fused_projections) gate_up = [gate | up rows, hidden].
  const TensorView* gate;        // [intermediate, hidden]
  const TensorView* up;          // [intermediate, hidden]
  const TensorView* gate_up;     // [2*intermediate, hidden]
  const TensorView* down;        // [hidden, intermediate]
};

struct ModelWeightViews {
  const TensorView* embed;       // [vocab, hidden]
  const TensorView* final_norm;  // [hidden]
  const TensorView* lm_head;     // [vocab, hidden]; the embedding when tie_word_embeddings
  std::vector<LayerWeightViews> layers;
};

// Finds every tensor of the model by its Hugging Face name (model.embed_tokens.weight,
// model.layers.N.self_attn.q_proj.weight, ..., Phi-3's qkv_proj and gate_up_proj, Qwen2's biases,
// q_norm/k_norm, Gemma's feed-forward norms, lm_head.weight). A missing or misshaped tensor is an
// error naming the file and the tensor. The views live as long as `store`.
Result<ModelWeightViews> find_model_weights(const TensorStore& store, const ModelConfig& cfg);

}  // namespace quilt::engine
