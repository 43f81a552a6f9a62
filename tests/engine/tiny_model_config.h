// A model shape small enough for scheduler tests that never run a forward pass.
#pragma once

#include "engine/model/model_config.h"

namespace quilt::engine::testing {

inline ModelConfig tiny_model_config() {
  ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  return c;
}

}  // namespace quilt::engine::testing
