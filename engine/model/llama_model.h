// The decoder forward pass of every supported architecture (Llama, Mistral, Qwen2/3, Gemma 2/3,
// Phi-3; named for Llama, its first), written once against the Backend interface. The
// architectures differ only where ModelConfig says: biases, q/k norms, Gemma's norms around
// attention and MLP, the activation, the embedding scale, per-layer attention parameters and RoPE
// tables, and the final logit soft-capping.
#pragma once

#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model_config.h"
#include "engine/model/rope.h"
#include "engine/weights/safetensors.h"

namespace quilt::engine {

class LlamaModel {
 public:
  // Loads the weights of `store` onto `backend` (converted to its compute dtype) and sizes the
  // activations for steps of up to max_step_tokens tokens and max_lora_rank adapter rank.
  // `backend` must outlive the model.
  static Result<std::unique_ptr<LlamaModel>> load(const ModelConfig& cfg, const TensorStore& store,
                                                  Backend& backend, int32_t max_step_tokens,
                                                  int32_t max_lora_rank);

  // Runs one step (backend.begin_step(layout) must have been called). The next-token logits of
  // layout.logit_rows stay in backend memory: [rows, vocab] float32, valid until the next step,
  // for Backend::sample.
  Result<Tensor> forward(const StepLayout& layout);
  // The same, with the logits downloaded into `logits` ([rows, vocab], row-major).
  Status forward(const StepLayout& layout, std::vector<float>& logits);

  const ModelConfig& config() const { return cfg_; }
  int32_t max_step_tokens() const { return max_step_tokens_; }

 private:
  struct Layer {
    // q/k/v and gate/up stacked by rows: one GEMM each, whose output row holds the projections
    // side by side (q | k | v, gate | up).
    Tensor input_norm, qkv, o, gate_up, down;
    Tensor qkv_bias;        // [1, q_dim + 2 kv_dim] (Qwen2); empty: none
    Tensor q_norm, k_norm;  // [1, head_dim] (Qwen3, Gemma 3); empty: none
    Tensor mlp_norm;        // before the MLP (HF post_attention_layernorm, Gemma pre_feedforward)
    // Gemma: norms of the attention and MLP outputs before their residual adds; empty: none.
    Tensor attn_out_norm, mlp_out_norm;
    AttentionParams attention;  // scale, soft-capping, sliding window of this layer
    const RopeTable* rope = nullptr;
  };
  struct Activations {
    Tensor h, x, qkv, attn, gate_up, act, proj_out, last, logits;
    Tensor lora_v[3];  // [T, max_rank] each, float32
  };

  LlamaModel(const ModelConfig& cfg, Backend& backend) : cfg_(cfg), backend_(backend) {}
  // Adds the LoRA deltas of `slices` (projections that all read x) into their columns of y.
  Status add_lora(const StepLayout& layout, int32_t layer, const Tensor& x, Tensor& y,
                  std::initializer_list<ProjectionSlice> slices);

  ModelConfig cfg_;
  Backend& backend_;
  RopeTable rope_, local_rope_;  // local: Gemma 3's sliding layers
  int32_t max_step_tokens_ = 0;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  Activations act_;
};

}  // namespace quilt::engine
