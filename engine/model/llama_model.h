// The Llama-family forward pass, written once against the Backend interface.
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

  // Runs one step (backend.begin_step(layout) must have been called) and writes the next-token
  // logits of layout.logit_rows into `logits` ([rows, vocab], row-major).
  Status forward(const StepLayout& layout, std::vector<float>& logits);

  const ModelConfig& config() const { return cfg_; }
  int32_t max_step_tokens() const { return max_step_tokens_; }

 private:
  struct Layer {
    Tensor input_norm, q, k, v, o, post_norm, gate, up, down;
  };
  struct Activations {
    Tensor h, x, q, k, v, attn, proj, gate, up, act, last, logits;
    Tensor lora_v[3];  // [T, max_rank] each, float32
  };

  LlamaModel(const ModelConfig& cfg, Backend& backend) : cfg_(cfg), backend_(backend) {}
  Status add_lora(const StepLayout& layout, int32_t layer, const Tensor& x,
                  std::initializer_list<std::pair<int32_t, Tensor*>> outputs);

  ModelConfig cfg_;
  Backend& backend_;
  RopeTable rope_;
  int32_t max_step_tokens_ = 0;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  Activations act_;
};

}  // namespace quilt::engine
