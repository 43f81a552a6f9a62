// Hugging Face config.json / generation_config.json of the supported decoder models: parsing,
// validation and transformers' defaults.
#include "engine/model/model_config.h"
#include "common/files.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>

namespace quilt::engine {
namespace {

using json = nlohmann::json;

// Typed access to one JSON object; every error names the file and the field. Absent and null
// fields read as nullopt, because Hugging Face writes `null` for "use the default".
class Fields {
 public:
  Fields(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  const json* raw(std::string_view key) const {
    auto it = obj_.find(key);
    return (it == obj_.end() || it->is_null()) ? nullptr : &*it;
  }
  bool has(std::string_view key) const { return raw(key) != nullptr; }
  // The key is written, even as null (null often means "off" where absence means the default).
  bool present(std::string_view key) const { return obj_.find(key) != obj_.end(); }

  Result<std::optional<int64_t>> opt_int(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<int64_t>();
    if (!v->is_number_integer()) return error(key, "must be an integer");
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return error(key, "is out of range");
    }
    return std::optional<int64_t>(v->get<int64_t>());
  }
  Result<int64_t> req_int(std::string_view key) const {
    QUILT_ASSIGN_OR_RETURN(auto v, opt_int(key));
    if (!v) return error(key, "is required");
    return *v;
  }
  Result<std::optional<double>> opt_double(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<double>();
    if (!v->is_number()) return error(key, "must be a number");
    return std::optional<double>(v->get<double>());
  }
  Result<double> req_double(std::string_view key) const {
    QUILT_ASSIGN_OR_RETURN(auto v, opt_double(key));
    if (!v) return error(key, "is required");
    return *v;
  }
  Result<std::optional<bool>> opt_bool(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<bool>();
    if (!v->is_boolean()) return error(key, "must be true or false");
    return std::optional<bool>(v->get<bool>());
  }
  Result<std::optional<std::string>> opt_string(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<std::string>();
    if (!v->is_string()) return error(key, "must be a string");
    return std::optional<std::string>(v->get<std::string>());
  }

  std::string field(std::string_view key) const { return prefix_ + std::string(key); }
  Status error(std::string_view key, std::string_view why) const {
    return Status::InvalidArgument(source_ + ": " + field(key) + " " + std::string(why));
  }
  Status unsupported(std::string_view key, std::string_view why) const {
    return Status::Unimplemented(source_ + ": " + field(key) + " " + std::string(why));
  }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

Result<json> parse_object(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(source + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(source + ": not a JSON object");
  return j;
}

// A list of numbers (LongRoPE's short_factor / long_factor).
Result<std::vector<double>> number_list(const Fields& f, std::string_view key) {
  const json* v = f.raw(key);
  if (v == nullptr) return f.error(key, "is required");
  if (!v->is_array()) return f.error(key, "must be a list of numbers");
  std::vector<double> out;
  for (const json& e : *v) {
    if (!e.is_number()) return f.error(key, "must be a list of numbers");
    out.push_back(e.get<double>());
  }
  return out;
}

// What a rope object may fill in from outside it: transformers' standardize_rope_params copies
// the top-level original_max_position_embeddings (Phi-3) and falls back to max_position_embeddings.
struct RopeContext {
  std::optional<int64_t> top_original_max;
  int64_t max_position_embeddings = 0;
};

// Reads the rope type and its parameters from a rope_scaling or rope_parameters object.
// `type_required`: old-style rope_scaling objects always carry a type; rope_parameters may omit it.
Status parse_rope_object(const Fields& f, bool type_required, const RopeContext& ctx,
                         RopeConfig* rope) {
  QUILT_ASSIGN_OR_RETURN(auto type, f.opt_string("rope_type"));
  const char* type_key = "rope_type";
  if (!type) {
    QUILT_ASSIGN_OR_RETURN(type, f.opt_string("type"));  // the pre-4.45 spelling
    type_key = "type";
  }
  if (!type) {
    if (type_required) return f.error("rope_type", "is required");
    type = "default";
  }
  QUILT_ASSIGN_OR_RETURN(auto partial, f.opt_double("partial_rotary_factor"));
  if (partial && *partial != 1.0) {
    return f.unsupported("partial_rotary_factor",
                         json(*partial).dump() + " is not supported (only 1.0: every dimension "
                         "rotates)");
  }
  if (*type == "default") {
    rope->type = RopeScalingType::kDefault;
    return Status::OK();
  }
  // Phi-3's older configs say "su" (and, mistakenly, "yarn") for LongRoPE; transformers maps both.
  if (*type == "su" || (*type == "yarn" && f.has("short_factor") && f.has("long_factor"))) {
    type = "longrope";
  }
  if (*type != "linear" && *type != "llama3" && *type != "longrope") {
    return f.unsupported(type_key, "'" + *type +
                                       "' is not supported (supported: default, linear, llama3, "
                                       "longrope)");
  }
  if (*type == "longrope") {
    rope->type = RopeScalingType::kLongRope;
    QUILT_ASSIGN_OR_RETURN(rope->short_factor, number_list(f, "short_factor"));
    QUILT_ASSIGN_OR_RETURN(rope->long_factor, number_list(f, "long_factor"));
    QUILT_ASSIGN_OR_RETURN(auto original, f.opt_int("original_max_position_embeddings"));
    if (ctx.top_original_max) original = ctx.top_original_max;  // transformers prefers it
    rope->original_max_position_embeddings = original.value_or(ctx.max_position_embeddings);
    if (rope->original_max_position_embeddings <= 0) {
      return f.error("original_max_position_embeddings", "must be positive");
    }
    QUILT_ASSIGN_OR_RETURN(auto factor, f.opt_double("factor"));
    // Without a factor, transformers takes the ratio of the two context lengths.
    rope->factor = factor.value_or(static_cast<double>(ctx.max_position_embeddings) /
                                   static_cast<double>(rope->original_max_position_embeddings));
    QUILT_ASSIGN_OR_RETURN(auto attention_factor, f.opt_double("attention_factor"));
    if (attention_factor) {
      rope->attention_factor = *attention_factor;
    } else {
      rope->attention_factor =
          rope->factor <= 1.0
              ? 1.0
              : std::sqrt(1 + std::log(rope->factor) /
                                  std::log(static_cast<double>(
                                      rope->original_max_position_embeddings)));
    }
    for (double v : rope->short_factor) {
      if (!(v > 0)) return f.error("short_factor", "must hold positive numbers");
    }
    for (double v : rope->long_factor) {
      if (!(v > 0)) return f.error("long_factor", "must hold positive numbers");
    }
    return Status::OK();
  }
  QUILT_ASSIGN_OR_RETURN(rope->factor, f.req_double("factor"));
  if (!(rope->factor > 0)) return f.error("factor", "must be positive");
  if (*type == "linear") {
    rope->type = RopeScalingType::kLinear;
    return Status::OK();
  }
  rope->type = RopeScalingType::kLlama3;
  QUILT_ASSIGN_OR_RETURN(rope->low_freq_factor, f.req_double("low_freq_factor"));
  QUILT_ASSIGN_OR_RETURN(rope->high_freq_factor, f.req_double("high_freq_factor"));
  QUILT_ASSIGN_OR_RETURN(rope->original_max_position_embeddings,
                         f.req_int("original_max_position_embeddings"));
  if (!(rope->low_freq_factor > 0)) return f.error("low_freq_factor", "must be positive");
  // The llama3 blend divides by (high - low).
  if (!(rope->high_freq_factor > rope->low_freq_factor)) {
    return f.error("high_freq_factor", "must be greater than low_freq_factor");
  }
  if (rope->original_max_position_embeddings <= 0) {
    return f.error("original_max_position_embeddings", "must be positive");
  }
  return Status::OK();
}

// rope_theta / rope_scaling (old layout) or rope_parameters (transformers >= 5): one table for
// every layer, or (Gemma 3) one per layer type: {"full_attention": {...}, "sliding_attention":
// {...}}, whose sliding one goes to cfg->local_rope. `default_theta` and `default_local_theta`
// are the architecture's defaults when nothing says.
Status parse_rope(const Fields& top, const std::string& source, bool per_layer_type_ok,
                  double default_theta, double default_local_theta, ModelConfig* cfg) {
  QUILT_ASSIGN_OR_RETURN(auto theta, top.opt_double("rope_theta"));
  QUILT_ASSIGN_OR_RETURN(auto top_partial, top.opt_double("partial_rotary_factor"));
  if (top_partial && *top_partial != 1.0) {
    return top.unsupported("partial_rotary_factor",
                           json(*top_partial).dump() +
                               " is not supported (only 1.0: every dimension rotates)");
  }
  RopeContext ctx;
  QUILT_ASSIGN_OR_RETURN(ctx.top_original_max, top.opt_int("original_max_position_embeddings"));
  ctx.max_position_embeddings = cfg->max_position_embeddings;
  RopeConfig& rope = cfg->rope;
  std::optional<double> local_theta;
  if (const json* params = top.raw("rope_parameters")) {
    if (!params->is_object()) return top.error("rope_parameters", "must be an object");
    const bool nested = params->contains("full_attention") || params->contains("sliding_attention");
    if (nested) {
      if (!per_layer_type_ok) {
        return top.unsupported("rope_parameters",
                               "per-layer-type rope parameters are not supported for " +
                                   cfg->architecture);
      }
      for (const auto& [key, value] : params->items()) {
        if (key != "full_attention" && key != "sliding_attention") {
          return top.unsupported("rope_parameters." + key,
                                 "is not a layer type we know (full_attention, "
                                 "sliding_attention)");
        }
        if (value.is_null()) continue;
        if (!value.is_object()) return top.error("rope_parameters." + key, "must be an object");
        Fields f(value, source, "rope_parameters." + key + ".");
        const bool local = key == "sliding_attention";
        RopeConfig& target = local ? cfg->local_rope : rope;
        QUILT_ASSIGN_OR_RETURN(auto inner_theta, f.opt_double("rope_theta"));
        if (inner_theta) (local ? local_theta : theta) = inner_theta;
        QUILT_RETURN_IF_ERROR(parse_rope_object(f, /*type_required=*/false, ctx, &target));
      }
    } else {
      Fields f(*params, source, "rope_parameters.");
      QUILT_ASSIGN_OR_RETURN(auto inner_theta, f.opt_double("rope_theta"));
      if (inner_theta) theta = inner_theta;
      QUILT_RETURN_IF_ERROR(parse_rope_object(f, /*type_required=*/false, ctx, &rope));
    }
  } else if (const json* scaling = top.raw("rope_scaling")) {
    // Old layout; in Gemma 3 it scales the global (full-attention) layers only.
    if (!scaling->is_object()) return top.error("rope_scaling", "must be an object or null");
    Fields f(*scaling, source, "rope_scaling.");
    QUILT_RETURN_IF_ERROR(parse_rope_object(f, /*type_required=*/true, ctx, &rope));
  }
  rope.theta = theta.value_or(default_theta);
  if (!(rope.theta > 0)) return top.error("rope_theta", "must be positive");
  if (per_layer_type_ok) {
    if (!local_theta) {
      QUILT_ASSIGN_OR_RETURN(local_theta, top.opt_double("rope_local_base_freq"));
    }
    cfg->has_local_rope = true;
    cfg->local_rope.theta = local_theta.value_or(default_local_theta);
    if (!(cfg->local_rope.theta > 0)) return top.error("rope_local_base_freq", "must be positive");
  }
  for (const RopeConfig* r : {&cfg->rope, &cfg->local_rope}) {
    if (r->type != RopeScalingType::kLongRope) continue;
    const size_t half = static_cast<size_t>(cfg->head_dim / 2);
    if (r->short_factor.size() != half || r->long_factor.size() != half) {
      return Status::InvalidArgument(
          source + ": longrope short_factor and long_factor must each hold head_dim / 2 = " +
          std::to_string(half) + " numbers (they hold " + std::to_string(r->short_factor.size()) +
          " and " + std::to_string(r->long_factor.size()) + ")");
    }
  }
  return Status::OK();
}

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
  for (const ArchitectureInfo& a : kArchitectures) out += (out.empty() ? "" : ", ") + std::string(a.architecture);
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
      if (!t.is_string() ||
          (t.get<std::string>() != "sliding_attention" && t.get<std::string>() != "full_attention")) {
        return f.unsupported("layer_types", "[" + std::to_string(i) + "] " + t.dump() +
                                                " is not supported (sliding_attention or "
                                                "full_attention)");
      }
      sliding[i] = t.get<std::string>() == "sliding_attention";
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
  if (!(cfg->query_pre_attn_scalar > 0)) return f.error("query_pre_attn_scalar", "must be positive");
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
