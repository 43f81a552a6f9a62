// The base model's tensors by role, validated against its config. Views into the mapped files.
#pragma once

#include <memory>
#include <vector>

#include "engine/model/model_config.h"
#include "engine/weights/safetensors.h"

namespace quilt::engine {

struct LayerWeightViews {
  const TensorView* input_norm;  // [hidden]
  const TensorView* q;           // [num_heads*head_dim, hidden]
  const TensorView* k;           // [num_kv_heads*head_dim, hidden]
  const TensorView* v;           // [num_kv_heads*head_dim, hidden]
  const TensorView* o;           // [hidden, num_heads*head_dim]
  const TensorView* post_norm;   // [hidden]
  const TensorView* gate;        // [intermediate, hidden]
  const TensorView* up;          // [intermediate, hidden]
  const TensorView* down;        // [hidden, intermediate]
};

struct ModelWeightViews {
  const TensorView* embed;       // [vocab, hidden]
  const TensorView* final_norm;  // [hidden]
  const TensorView* lm_head;     // [vocab, hidden]; the embedding when tie_word_embeddings
  std::vector<LayerWeightViews> layers;
};

// Finds every tensor of a Llama-family model (HF names: model.embed_tokens.weight,
// model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight). A missing or misshaped tensor is an
// error naming the file and the tensor. The views live as long as `store`.
Result<ModelWeightViews> find_model_weights(const TensorStore& store, const ModelConfig& cfg);

}  // namespace quilt::engine
