// Rotary frequencies as transformers' _compute_*_rope_parameters compute them (default, linear,
// llama3, longrope).
#include "engine/model/rope.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace quilt::engine {
namespace {

// Round-to-nearest-even to bfloat16, returned widened to float.
float round_to_bf16(float v) {
  uint32_t bits = std::bit_cast<uint32_t>(v);
  bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
  return std::bit_cast<float>(bits);
}

// Round-to-nearest to IEEE half precision (normal range, which frequencies are in), widened.
float round_to_f16(float v) {
  const int exponent = std::ilogb(v);
  const float quantum = std::ldexp(1.0f, exponent - 10);
  return std::nearbyint(v / quantum) * quantum;
}

}  // namespace

RopeTable make_rope_table(const ModelConfig& cfg, const RopeConfig& rope) {
  RopeTable table;
  const int64_t half = cfg.head_dim / 2;
  table.inv_freq.resize(half);
  // See ModelConfig::rope_freqs_in_checkpoint_dtype: float32 unless the config asks for them
  // rounded to the checkpoint dtype (the rounding moves logits by ~1e-3 at 300 tokens).
  auto round_to_dtype = [&](float v) {
    if (!cfg.rope_freqs_in_checkpoint_dtype) return v;
    if (cfg.torch_dtype == "bfloat16") return round_to_bf16(v);
    if (cfg.torch_dtype == "float16") return round_to_f16(v);
    return v;
  };
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
        const float base_pow = static_cast<float>(std::pow(rope.theta, static_cast<double>(exponent)));
        const float short_f = static_cast<float>(rope.short_factor[static_cast<size_t>(i)]);
        const float long_f = static_cast<float>(rope.long_factor[static_cast<size_t>(i)]);
        inv = 1.0f / (short_f * base_pow);
        // transformers recomputes the long set in float32 when it switches, so it is not rounded.
        table.long_inv_freq.push_back(1.0f / (long_f * base_pow));
        break;
      }
    }
    table.inv_freq[i] = round_to_dtype(static_cast<float>(inv));
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
