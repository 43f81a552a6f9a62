// The shape of a decoder-only base model, read from a Hugging Face config.json: Llama, Mistral,
// Qwen2/2.5, Qwen3, Gemma 2, Gemma 3 (text) and Phi-3. One forward pass serves them all; the fields
// below are the per-architecture differences it branches on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

enum class RopeScalingType { kDefault, kLinear, kLlama3, kLongRope };

struct RopeConfig {
  double theta = 10000.0;
  RopeScalingType type = RopeScalingType::kDefault;
  double factor = 1.0;                          // linear and llama3
  double low_freq_factor = 1.0;                 // llama3
  double high_freq_factor = 4.0;                // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3, longrope
  // longrope: per-frequency divisors [head_dim / 2] for sequences within / beyond
  // original_max_position_embeddings, and the factor cos and sin are multiplied by.
  std::vector<double> short_factor, long_factor;
  double attention_factor = 1.0;
};

// The gated MLP's activation: silu (Llama, Mistral, Qwen, Phi-3) or GELU with the tanh
// approximation (Gemma: "gelu_pytorch_tanh").
enum class Activation { kSilu, kGeluTanh };

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM", "Qwen2ForCausalLM", ...
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads for MHA
  int64_t head_dim = 0;      // config's head_dim, else hidden_size / num_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  RopeConfig rope;           // full-attention layers (all layers unless local_rope is set)
  std::string torch_dtype;   // as declared ("bfloat16", ...); informational

  // --- per-architecture differences ---
  Activation activation = Activation::kSilu;
  bool qkv_bias = false;      // q/k/v projections carry biases (Qwen2)
  bool qk_norm = false;       // per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3)
  // RMSNorm weights are stored as w and applied as (1 + w) (Gemma); folded at load.
  bool norm_weight_offset = false;
  // RMSNorm of the attention and MLP outputs before each residual add, and a separate
  // pre-MLP norm (Gemma 2/3: post_attention_layernorm, pre_ and post_feedforward_layernorm).
  bool sandwich_norms = false;
  // q/k/v and gate/up stored fused as qkv_proj and gate_up_proj (Phi-3).
  bool fused_projections = false;
  float embedding_scale = 0.f;  // > 0: embeddings are multiplied by it (Gemma: sqrt(hidden))
  double query_pre_attn_scalar = 0;  // > 0: attention scale is its -1/2 power (Gemma)
  double attn_logit_softcap = 0;     // > 0: attention scores soft-capped (Gemma 2)
  double final_logit_softcap = 0;    // > 0: logits soft-capped (Gemma 2/3)
  // Sliding-window attention: layer i sees the last `sliding_window` positions when
  // layer_sliding[i]; an empty vector means no layer slides.
  int64_t sliding_window = 0;
  std::vector<bool> layer_sliding;
  // Sliding layers' own RoPE (Gemma 3's local base frequency); unset: they use `rope`.
  bool has_local_rope = false;
  RopeConfig local_rope;

  // From generation_config.json when present, else config.json.
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  bool is_sliding(int64_t layer) const {
    return sliding_window > 0 && layer < static_cast<int64_t>(layer_sliding.size()) &&
           layer_sliding[static_cast<size_t>(layer)];
  }
  const RopeConfig& rope_for_layer(int64_t layer) const {
    return has_local_rope && is_sliding(layer) ? local_rope : rope;
  }
};

// Parses config.json text. `source` names the file in error messages.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);

// Reads DIR/config.json and, when present, DIR/generation_config.json (which overrides bos/eos).
// Unsupported architectures and features, and missing or inconsistent fields, are errors naming
// the file, the field and the value.
Result<ModelConfig> load_model_config(const std::filesystem::path& dir);

// The architectures parse_model_config accepts, for messages and the README.
const std::vector<std::string>& supported_architectures();

}  // namespace quilt::engine
