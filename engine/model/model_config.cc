// Hugging Face config.json / generation_config.json of the supported decoder models: parsing,
// validation and transformers' defaults.
#include "engine/model/model_config.h"

#include "common/files.h"
#include "engine/model/config_fields.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>

namespace quilt::engine {
namespace {

using config_internal::Fields;
using config_internal::json;
using config_internal::parse_object;
using config_internal::parse_rope;

// bos_token_id / eos_token_id from either file; eos may be one id or a list of ids.
Status parse_special_tokens(const Fields& f, ModelConfig* cfg) {
  QUILT_ASSIGN_OR_RETURN(auto bos, f.opt_int("bos_token_id"));
  if (bos) cfg->bos_token_id = *bos;
  if (const json* eos = f.raw("eos_token_id")) {
    std::vector<int64_t> ids;
    if (eos->is_number_integer()) {
      ids.push_back(eos->get<int64_t>());
    } else if (eos->is_array()) {
      for (const auto& e : *eos) {
        if (!e.is_number_integer()) return f.error("eos_token_id", "must hold integers");
        ids.push_back(e.get<int64_t>());
      }
    } else {
      return f.error("eos_token_id", "must be an integer or a list of integers");
    }
    cfg->eos_token_ids = std::move(ids);
  }
  return Status::OK();
}

// What each supported architecture is, and transformers' defaults for the fields its configs may
// leave out.
enum class Family { kLlama, kMistral, kQwen2, kQwen3, kGemma2, kGemma3, kPhi3 };

struct ArchitectureInfo {
  const char* architecture;
  const char* model_type;
  Family family;
  int64_t default_max_position_embeddings;
  double default_rms_norm_eps;
  int64_t default_head_dim;  // 0: hidden_size / num_attention_heads
};

constexpr ArchitectureInfo kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Family::kLlama, 2048, 1e-6, 0},
    {"MistralForCausalLM", "mistral", Family::kMistral, 4096 * 32, 1e-6, 0},
    {"Qwen2ForCausalLM", "qwen2", Family::kQwen2, 32768, 1e-6, 0},
    {"Qwen3ForCausalLM", "qwen3", Family::kQwen3, 32768, 1e-6, 128},
    {"Gemma2ForCausalLM", "gemma2", Family::kGemma2, 8192, 1e-6, 256},
    {"Gemma3ForCausalLM", "gemma3_text", Family::kGemma3, 131072, 1e-6, 256},
    {"Phi3ForCausalLM", "phi3", Family::kPhi3, 4096, 1e-5, 0},
};

std::string supported_list() {
  std::string out;
  for (const ArchitectureInfo& a : kArchitectures) {
    out += (out.empty() ? "" : ", ") + std::string(a.architecture);
  }
  return out;
}

Result<const ArchitectureInfo*> parse_architecture(const Fields& f, const std::string& source) {
  std::string arch;
  if (const json* archs = f.raw("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return f.error("architectures", "must be a non-empty list of strings");
    }
    arch = (*archs)[0].get<std::string>();
  } else {
    // Some hand-written configs carry only model_type.
    QUILT_ASSIGN_OR_RETURN(auto model_type, f.opt_string("model_type"));
    if (!model_type) return Status::InvalidArgument(source + ": architectures is required");
    for (const ArchitectureInfo& a : kArchitectures) {
      if (*model_type == a.model_type) return &a;
    }
    return Status::Unimplemented(source + ": model_type '" + *model_type +
                                 "' is not supported (supported architectures: " +
                                 supported_list() + ")");
  }
  for (const ArchitectureInfo& a : kArchitectures) {
    if (arch == a.architecture) return &a;
  }
  std::string hint;
  if (arch == "Gemma3ForConditionalGeneration") {
    hint = "; the multimodal Gemma 3 checkpoints are not supported, only the text-only "
           "Gemma3ForCausalLM";
  }
  return Status::Unimplemented(source + ": architectures[0] '" + arch +
                               "' is not supported (supported: " + supported_list() + ")" + hint);
}

// The activation of the gated MLP: Gemma reads hidden_activation, the others hidden_act.
Status parse_activation(const Fields& f, Family family, ModelConfig* cfg) {
  const bool gemma = family == Family::kGemma2 || family == Family::kGemma3;
  const char* key = gemma ? "hidden_activation" : "hidden_act";
  QUILT_ASSIGN_OR_RETURN(auto act, f.opt_string(key));
  const std::string name = act.value_or(gemma ? "gelu_pytorch_tanh" : "silu");
  if (name == "silu" || name == "swish") {
    cfg->activation = Activation::kSilu;
  } else if (name == "gelu_pytorch_tanh" || name == "gelu_new") {  // the same tanh formula
    cfg->activation = Activation::kGeluTanh;
  } else {
    return f.unsupported(key, "'" + name +
                                  "' is not supported (supported: silu, gelu_pytorch_tanh, "
                                  "gelu_new)");
  }
  return Status::OK();
}

// Which layers use sliding-window attention, and the window. Mistral and Phi-3 slide in every
// layer when sliding_window is set; Qwen2/3 from max_window_layers on when use_sliding_window;
// Gemma 2 alternates (even layers slide), Gemma 3 slides except every sliding_window_pattern-th
// layer; layer_types, when present, says it outright (Qwen, Gemma).
Status parse_sliding_window(const Fields& f, Family family, ModelConfig* cfg) {
  const bool gemma = family == Family::kGemma2 || family == Family::kGemma3;
  QUILT_ASSIGN_OR_RETURN(auto window, f.opt_int("sliding_window"));
  // Mistral's and Gemma's configs default to 4096 when the key is absent; null (Mistral v0.2+,
  // Nemo) means no window.
  if (!f.present("sliding_window") && (gemma || family == Family::kMistral)) window = 4096;
  if (window && *window <= 0) {
    return f.error("sliding_window", "must be positive or null, got " + std::to_string(*window));
  }
  const size_t n = static_cast<size_t>(cfg->num_layers);
  std::vector<bool> sliding(n, false);
  switch (family) {
    case Family::kLlama:
      return Status::OK();  // LlamaConfig has no sliding window
    case Family::kMistral:
    case Family::kPhi3:
      if (!window) return Status::OK();
      sliding.assign(n, true);
      break;
    case Family::kQwen2:
    case Family::kQwen3: {
      QUILT_ASSIGN_OR_RETURN(auto use, f.opt_bool("use_sliding_window"));
      if (!use.value_or(false)) return Status::OK();  // transformers drops the window
      if (!window) window = 4096;
      QUILT_ASSIGN_OR_RETURN(auto max_window_layers, f.opt_int("max_window_layers"));
      for (size_t i = 0; i < n; ++i) {
        sliding[i] = static_cast<int64_t>(i) >= max_window_layers.value_or(28);
      }
      break;
    }
    case Family::kGemma2:
      for (size_t i = 0; i < n; ++i) sliding[i] = (i + 1) % 2 != 0;
      break;
    case Family::kGemma3: {
      QUILT_ASSIGN_OR_RETURN(auto pattern, f.opt_int("sliding_window_pattern"));
      if (pattern && *pattern <= 0) return f.error("sliding_window_pattern", "must be positive");
      for (size_t i = 0; i < n; ++i) sliding[i] = (i + 1) % pattern.value_or(6) != 0;
      break;
    }
  }
  if (const json* types = f.raw("layer_types"); types && family != Family::kMistral &&
                                                family != Family::kPhi3) {
    if (!types->is_array() || types->size() != n) {
      return f.error("layer_types", "must list one type per layer (" + std::to_string(n) + ")");
    }
    for (size_t i = 0; i < n; ++i) {
      const json& t = (*types)[i];
      const std::string type = t.is_string() ? t.get<std::string>() : "";
      if (type != "sliding_attention" && type != "full_attention") {
        return f.unsupported("layer_types", "[" + std::to_string(i) + "] " + t.dump() +
                                                " is not supported (sliding_attention or "
                                                "full_attention)");
      }
      sliding[i] = type == "sliding_attention";
    }
  }
  if (!window) return Status::OK();
  if (*window > INT32_MAX) return f.error("sliding_window", "is out of range");
  cfg->sliding_window = *window;
  cfg->layer_sliding = std::move(sliding);
  return Status::OK();
}

// The fields of Gemma 2 and 3 that change the math: (1 + w) norms, sandwich norms, the embedding
// scale, the attention scale and soft-capping.
Status parse_gemma(const Fields& f, Family family, ModelConfig* cfg) {
  cfg->norm_weight_offset = true;
  cfg->sandwich_norms = true;
  cfg->qk_norm = family == Family::kGemma3;
  cfg->embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(cfg->hidden_size)));
  QUILT_ASSIGN_OR_RETURN(auto scalar, f.opt_double("query_pre_attn_scalar"));
  cfg->query_pre_attn_scalar = scalar.value_or(256);
  if (!(cfg->query_pre_attn_scalar > 0)) {
    return f.error("query_pre_attn_scalar", "must be positive");
  }
  QUILT_ASSIGN_OR_RETURN(auto final_cap, f.opt_double("final_logit_softcapping"));
  QUILT_ASSIGN_OR_RETURN(auto attn_cap, f.opt_double("attn_logit_softcapping"));
  if (family == Family::kGemma2) {
    // Gemma2Config's defaults apply only when the key is absent; null turns capping off.
    if (!f.present("final_logit_softcapping")) final_cap = 30.0;
    if (!f.present("attn_logit_softcapping")) attn_cap = 50.0;
  }
  cfg->final_logit_softcap = final_cap.value_or(0);
  // Gemma 3's attention never applies attn_logit_softcapping (transformers reads, then ignores it).
  cfg->attn_logit_softcap = family == Family::kGemma2 ? attn_cap.value_or(0) : 0;
  if (cfg->final_logit_softcap < 0) return f.error("final_logit_softcapping", "must be positive");
  if (cfg->attn_logit_softcap < 0) return f.error("attn_logit_softcapping", "must be positive");
  QUILT_ASSIGN_OR_RETURN(auto bidirectional, f.opt_bool("use_bidirectional_attention"));
  if (bidirectional.value_or(false)) {
    return f.unsupported("use_bidirectional_attention", "true is not supported (causal only)");
  }
  return Status::OK();
}

}  // namespace

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ArchitectureInfo& a : kArchitectures) v.emplace_back(a.architecture);
    return v;
  }();
  return names;
}

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source) {
  QUILT_ASSIGN_OR_RETURN(json j, parse_object(json_text, source));
  Fields f(j, source);
  ModelConfig cfg;

  QUILT_ASSIGN_OR_RETURN(const ArchitectureInfo* arch, parse_architecture(f, source));
  const Family family = arch->family;
  cfg.architecture = arch->architecture;

  QUILT_ASSIGN_OR_RETURN(cfg.vocab_size, f.req_int("vocab_size"));
  QUILT_ASSIGN_OR_RETURN(cfg.hidden_size, f.req_int("hidden_size"));
  QUILT_ASSIGN_OR_RETURN(cfg.intermediate_size, f.req_int("intermediate_size"));
  QUILT_ASSIGN_OR_RETURN(cfg.num_layers, f.req_int("num_hidden_layers"));
  QUILT_ASSIGN_OR_RETURN(cfg.num_heads, f.req_int("num_attention_heads"));
  for (auto [key, value] :
       {std::pair{"vocab_size", cfg.vocab_size}, std::pair{"hidden_size", cfg.hidden_size},
        std::pair{"intermediate_size", cfg.intermediate_size},
        std::pair{"num_hidden_layers", cfg.num_layers},
        std::pair{"num_attention_heads", cfg.num_heads}}) {
    if (value <= 0) return f.error(key, "must be positive, got " + std::to_string(value));
  }

  QUILT_ASSIGN_OR_RETURN(auto kv_heads, f.opt_int("num_key_value_heads"));
  cfg.num_kv_heads = kv_heads.value_or(cfg.num_heads);
  if (cfg.num_kv_heads <= 0) return f.error("num_key_value_heads", "must be positive");
  if (cfg.num_heads % cfg.num_kv_heads != 0) {
    return f.error("num_key_value_heads", "(" + std::to_string(cfg.num_kv_heads) +
                                              ") must divide num_attention_heads (" +
                                              std::to_string(cfg.num_heads) + ")");
  }

  QUILT_ASSIGN_OR_RETURN(auto head_dim, f.opt_int("head_dim"));
  if (head_dim) {
    cfg.head_dim = *head_dim;
  } else if (arch->default_head_dim > 0) {
    cfg.head_dim = arch->default_head_dim;
  } else {
    if (cfg.hidden_size % cfg.num_heads != 0) {
      return f.error("hidden_size",
                     "must be divisible by num_attention_heads when head_dim is "
                     "not given");
    }
    cfg.head_dim = cfg.hidden_size / cfg.num_heads;
  }
  // RoPE rotates pairs of dimensions.
  if (cfg.head_dim <= 0 || cfg.head_dim % 2 != 0) {
    return f.error("head_dim", "must be positive and even, got " + std::to_string(cfg.head_dim));
  }

  // Missing values take transformers' defaults for the architecture.
  QUILT_ASSIGN_OR_RETURN(auto max_pos, f.opt_int("max_position_embeddings"));
  cfg.max_position_embeddings = max_pos.value_or(arch->default_max_position_embeddings);
  if (cfg.max_position_embeddings <= 0)
    return f.error("max_position_embeddings", "must be positive");

  QUILT_ASSIGN_OR_RETURN(auto eps, f.opt_double("rms_norm_eps"));
  cfg.rms_norm_eps = eps.value_or(arch->default_rms_norm_eps);
  if (!(cfg.rms_norm_eps > 0)) return f.error("rms_norm_eps", "must be positive");

  QUILT_ASSIGN_OR_RETURN(auto tie, f.opt_bool("tie_word_embeddings"));
  const bool gemma = family == Family::kGemma2 || family == Family::kGemma3;
  cfg.tie_word_embeddings = tie.value_or(gemma);  // Gemma ties by default

  QUILT_ASSIGN_OR_RETURN(auto dtype, f.opt_string("torch_dtype"));
  if (!dtype) {
    QUILT_ASSIGN_OR_RETURN(dtype, f.opt_string("dtype"));  // transformers >= 5 spelling
  }
  cfg.torch_dtype = dtype.value_or("");

  QUILT_RETURN_IF_ERROR(parse_activation(f, family, &cfg));
  // Biases: Qwen2's q/k/v always; elsewhere attention_bias would add an o_proj bias we lack.
  cfg.qkv_bias = family == Family::kQwen2;
  QUILT_ASSIGN_OR_RETURN(auto attention_bias, f.opt_bool("attention_bias"));
  if (attention_bias.value_or(false) && family != Family::kQwen2) {
    return f.unsupported("attention_bias", "true is not supported (only Qwen2's q/k/v biases)");
  }
  QUILT_ASSIGN_OR_RETURN(auto mlp_bias, f.opt_bool("mlp_bias"));
  if (mlp_bias.value_or(false)) return f.unsupported("mlp_bias", "true is not supported");
  if (f.has("quantization_config")) {
    return f.unsupported("quantization_config",
                         "is present: quantized checkpoints are not "
                         "supported");
  }
  cfg.qk_norm = family == Family::kQwen3;
  cfg.fused_projections = family == Family::kPhi3;
  if (gemma) {
    QUILT_RETURN_IF_ERROR(parse_gemma(f, family, &cfg));
  }
  QUILT_RETURN_IF_ERROR(parse_sliding_window(f, family, &cfg));

  const double default_theta = family == Family::kGemma3 ? 1e6 : 10000.0;
  QUILT_RETURN_IF_ERROR(parse_rope(f, source, /*per_layer_type_ok=*/family == Family::kGemma3,
                                   default_theta, 10000.0, &cfg));
  QUILT_RETURN_IF_ERROR(parse_special_tokens(f, &cfg));
  return cfg;
}

Result<ModelConfig> load_model_config(const std::filesystem::path& dir) {
  const auto config_path = dir / "config.json";
  QUILT_ASSIGN_OR_RETURN(std::string text, quilt::read_file(config_path));
  QUILT_ASSIGN_OR_RETURN(ModelConfig cfg, parse_model_config(text, config_path.string()));

  // generation_config.json is what generate() uses for bos/eos, and often lists more eos ids
  // (Llama 3 instruct: <|end_of_text|>, <|eom_id|>, <|eot_id|>).
  const auto gen_path = dir / "generation_config.json";
  std::error_code ec;
  if (std::filesystem::exists(gen_path, ec)) {
    QUILT_ASSIGN_OR_RETURN(std::string gen_text, quilt::read_file(gen_path));
    const std::string source = gen_path.string();
    QUILT_ASSIGN_OR_RETURN(json gen, parse_object(gen_text, source));
    QUILT_RETURN_IF_ERROR(parse_special_tokens(Fields(gen, source), &cfg));
  }
  return cfg;
}

}  // namespace quilt::engine
