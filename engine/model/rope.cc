// Rotary frequencies as transformers' _compute_*_rope_parameters compute them (default, linear,
// llama3, longrope).
#include "engine/model/rope.h"

#include <cmath>
#include <cstdint>
#include <numbers>

namespace quilt::engine {

RopeTable make_rope_table(const ModelConfig& cfg, const RopeConfig& rope) {
  RopeTable table;
  const int64_t half = cfg.head_dim / 2;
  table.inv_freq.resize(half);
  // float32 throughout, as from_pretrained keeps the rotary inv_freq buffer whatever dtype it
  // loads the weights in (tests/data/models/README.md).
  for (int64_t i = 0; i < half; ++i) {
    // transformers computes this in float32: 1 / theta^(2i / dim).
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(cfg.head_dim);
    double inv = 1.0 / std::pow(rope.theta, static_cast<double>(exponent));
    switch (rope.type) {
      case RopeScalingType::kDefault:
        break;
      case RopeScalingType::kLinear:
        inv /= rope.factor;
        break;
      case RopeScalingType::kLlama3: {
        const double old_len = static_cast<double>(rope.original_max_position_embeddings);
        const double low_freq_wavelen = old_len / rope.low_freq_factor;
        const double high_freq_wavelen = old_len / rope.high_freq_factor;
        const double wavelen = 2 * std::numbers::pi / inv;
        if (wavelen > low_freq_wavelen) {
          inv /= rope.factor;
        } else if (wavelen >= high_freq_wavelen) {  // between the two: interpolate smoothly
          const double smooth = (old_len / wavelen - rope.low_freq_factor) /
                                (rope.high_freq_factor - rope.low_freq_factor);
          inv = (1 - smooth) * inv / rope.factor + smooth * inv;
        }
        break;
      }
      case RopeScalingType::kLongRope: {
        // 1 / (ext_factor * theta^(2i / dim)), in float32 as transformers computes it.
        const float base_pow =
            static_cast<float>(std::pow(rope.theta, static_cast<double>(exponent)));
        const float short_f = static_cast<float>(rope.short_factor[static_cast<size_t>(i)]);
        const float long_f = static_cast<float>(rope.long_factor[static_cast<size_t>(i)]);
        inv = 1.0f / (short_f * base_pow);
        table.long_inv_freq.push_back(1.0f / (long_f * base_pow));
        break;
      }
    }
    table.inv_freq[i] = static_cast<float>(inv);
  }
  if (rope.type == RopeScalingType::kLongRope) {
    // A sequence switches to the long factors once it holds more than the original context.
    table.long_from_position = rope.original_max_position_embeddings;
    table.attention_scaling = static_cast<float>(rope.attention_factor);
  }
  return table;
}

RopeTable make_rope_table(const ModelConfig& cfg) { return make_rope_table(cfg, cfg.rope); }

}  // namespace quilt::engine
