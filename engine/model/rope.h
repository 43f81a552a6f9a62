// Rotary position embedding frequencies, with the linear, llama3 and longrope scalings of HF
// transformers.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/model_config.h"

namespace quilt::engine {

struct RopeTable {
  std::vector<float> inv_freq;  // [head_dim / 2]; angle of pair i at position p = p * inv_freq[i]
  float attention_scaling = 1.0f;  // multiplies cos and sin (LongRoPE's attention factor)
  // LongRoPE: positions >= long_from_position rotate with long_inv_freq instead (0: never).
  // Hugging Face switches a whole sequence once it outgrows original_max_position_embeddings;
  // the two agree whenever a sequence stays shorter than that.
  std::vector<float> long_inv_freq;
  int64_t long_from_position = 0;

  const std::vector<float>& freqs_at(int64_t position) const {
    return long_from_position > 0 && position >= long_from_position ? long_inv_freq : inv_freq;
  }
};

// The table of `rope` (cfg.rope, or cfg.local_rope for Gemma 3's sliding layers).
RopeTable make_rope_table(const ModelConfig& cfg, const RopeConfig& rope);
RopeTable make_rope_table(const ModelConfig& cfg);  // cfg.rope's


}  // namespace quilt::engine
