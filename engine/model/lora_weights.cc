// Projection shapes of a Llama decoder layer, and size accounting of LoRA adapters.
#include "engine/model/lora_weights.h"

#include <algorithm>

namespace quilt::engine {

const char* projection_name(Projection p) {
  switch (p) {
    case Projection::kQ:
      return "q_proj";
    case Projection::kK:
      return "k_proj";
    case Projection::kV:
      return "v_proj";
    case Projection::kO:
      return "o_proj";
    case Projection::kGate:
      return "gate_proj";
    case Projection::kUp:
      return "up_proj";
    case Projection::kDown:
      return "down_proj";
  }
  return "?";
}

int64_t projection_in_dim(const ModelConfig& cfg, Projection p) {
  switch (p) {
    case Projection::kQ:
    case Projection::kK:
    case Projection::kV:
    case Projection::kGate:
    case Projection::kUp:
      return cfg.hidden_size;
    case Projection::kO:
      return cfg.q_dim();
    case Projection::kDown:
      return cfg.intermediate_size;
  }
  return 0;
}

int64_t projection_out_dim(const ModelConfig& cfg, Projection p) {
  switch (p) {
    case Projection::kQ:
      return cfg.q_dim();
    case Projection::kK:
    case Projection::kV:
      return cfg.kv_dim();
    case Projection::kO:
    case Projection::kDown:
      return cfg.hidden_size;
    case Projection::kGate:
    case Projection::kUp:
      return cfg.intermediate_size;
  }
  return 0;
}

int64_t LoraWeights::max_rank() const {
  int64_t r = 0;
  for (const auto& layer : layers) {
    for (const auto& m : layer) r = std::max(r, m.rank);
  }
  return r;
}

int64_t LoraWeights::num_parameters() const {
  int64_t n = 0;
  for (const auto& layer : layers) {
    for (const auto& m : layer) n += static_cast<int64_t>(m.a.size() + m.bt.size());
  }
  return n;
}

}  // namespace quilt::engine
