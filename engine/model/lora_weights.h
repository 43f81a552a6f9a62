// One LoRA adapter's weights in the engine's layout: per layer and projection, A and Bᵀ as rank rows.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/model_config.h"

namespace quilt::engine {

// The seven linear projections of a Llama decoder layer that LoRA may target.
enum class Projection : int { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumProjections = 7;

const char* projection_name(Projection p);  // "q_proj", ...
int64_t projection_in_dim(const ModelConfig& cfg, Projection p);
int64_t projection_out_dim(const ModelConfig& cfg, Projection p);

// delta(x) = scale · (x·Aᵀ)·Bᵀ for one (layer, projection). rank 0: not targeted.
struct LoraModule {
  int64_t rank = 0;
  float scale = 0.f;      // alpha / rank, or alpha / sqrt(rank) with rsLoRA
  std::vector<float> a;   // [rank, in_dim]  (PEFT lora_A.weight)
  std::vector<float> bt;  // [rank, out_dim] (PEFT lora_B.weight transposed, so rows stay contiguous)
};

// Immutable once built; shared by the registry and the engine (std::shared_ptr<const LoraWeights>).
struct LoraWeights {
  std::string name;  // for logs and errors only
  std::vector<std::array<LoraModule, kNumProjections>> layers;  // [num_layers]

  int64_t max_rank() const;
  int64_t num_parameters() const;
};

}  // namespace quilt::engine
