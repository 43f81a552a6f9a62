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
    Tensor input_norm, qkv, o, post_norm, gate_up, down;
  };
  struct Activations {
    Tensor h, x, qkv, attn, gate_up, act, last, logits;
    Tensor lora_v[3];  // [T, max_rank] each, float32
  };

  LlamaModel(const ModelConfig& cfg, Backend& backend) : cfg_(cfg), backend_(backend) {}
  // Adds the LoRA deltas of `slices` (projections that all read x) into their columns of y.
  Status add_lora(const StepLayout& layout, int32_t layer, const Tensor& x, Tensor& y,
                  std::initializer_list<ProjectionSlice> slices);

  ModelConfig cfg_;
  Backend& backend_;
  RopeTable rope_;
  int32_t max_step_tokens_ = 0;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  Activations act_;
};

}  // namespace quilt::engine
