// Rotary position embedding frequencies, with the linear and llama3 scalings of HF transformers.
#pragma once

#include <vector>

#include "engine/model/model_config.h"

namespace quilt::engine {

struct RopeTable {
  std::vector<float> inv_freq;  // [head_dim / 2]; angle of pair i at position p = p * inv_freq[i]
  float attention_scaling = 1.0f;  // multiplies cos and sin (1 for the supported types)
};

RopeTable make_rope_table(const ModelConfig& cfg);

}  // namespace quilt::engine
