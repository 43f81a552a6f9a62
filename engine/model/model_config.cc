// Hugging Face config.json / generation_config.json of Llama-family models: parsing, validation.
#include "engine/model/model_config.h"
#include "common/files.h"

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

// Reads the rope type and its parameters from a rope_scaling or rope_parameters object.
// `type_required`: old-style rope_scaling objects always carry a type; rope_parameters may omit it.
Status parse_rope_object(const Fields& f, bool type_required, RopeConfig* rope) {
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
  if (*type == "default") {
    rope->type = RopeScalingType::kDefault;
    return Status::OK();
  }
  if (*type != "linear" && *type != "llama3") {
    return f.unsupported(type_key,
                         "'" + *type + "' is not supported (supported: default, linear, llama3)");
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

Status parse_rope(const Fields& top, const std::string& source, RopeConfig* rope) {
  QUILT_ASSIGN_OR_RETURN(auto theta, top.opt_double("rope_theta"));
  if (const json* params = top.raw("rope_parameters")) {
    // transformers >= 5 form: {"rope_type": ..., "rope_theta": ..., ...}.
    if (!params->is_object()) return top.error("rope_parameters", "must be an object");
    if (!params->contains("rope_type") && !params->contains("rope_theta") && !params->empty() &&
        params->begin()->is_object()) {
      return top.unsupported("rope_parameters", "per-layer-type rope parameters are not supported");
    }
    Fields f(*params, source, "rope_parameters.");
    QUILT_ASSIGN_OR_RETURN(auto inner_theta, f.opt_double("rope_theta"));
    if (inner_theta) theta = inner_theta;
    QUILT_RETURN_IF_ERROR(parse_rope_object(f, /*type_required=*/false, rope));
  } else if (const json* scaling = top.raw("rope_scaling")) {
    if (!scaling->is_object()) return top.error("rope_scaling", "must be an object or null");
    Fields f(*scaling, source, "rope_scaling.");
    QUILT_RETURN_IF_ERROR(parse_rope_object(f, /*type_required=*/true, rope));
  }
  rope->theta = theta.value_or(10000.0);
  if (!(rope->theta > 0)) return top.error("rope_theta", "must be positive");
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

Result<std::string> parse_architecture(const Fields& f, const std::string& source) {
  if (const json* archs = f.raw("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return f.error("architectures", "must be a non-empty list of strings");
    }
    return (*archs)[0].get<std::string>();
  }
  // Some hand-written configs carry only model_type; map the two we know.
  QUILT_ASSIGN_OR_RETURN(auto model_type, f.opt_string("model_type"));
  if (model_type == "llama") return std::string("LlamaForCausalLM");
  if (model_type == "mistral") return std::string("MistralForCausalLM");
  return Status::InvalidArgument(source + ": architectures is required");
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source) {
  QUILT_ASSIGN_OR_RETURN(json j, parse_object(json_text, source));
  Fields f(j, source);
  ModelConfig cfg;

  QUILT_ASSIGN_OR_RETURN(cfg.architecture, parse_architecture(f, source));
  const bool mistral = cfg.architecture == "MistralForCausalLM";
  if (cfg.architecture != "LlamaForCausalLM" && !mistral) {
    return Status::Unimplemented(source + ": architecture '" + cfg.architecture +
                                 "' is not supported (supported: LlamaForCausalLM, "
                                 "MistralForCausalLM)");
  }

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

  // Missing values take transformers' LlamaConfig / MistralConfig defaults.
  QUILT_ASSIGN_OR_RETURN(auto max_pos, f.opt_int("max_position_embeddings"));
  cfg.max_position_embeddings = max_pos.value_or(mistral ? 4096 * 32 : 2048);
  if (cfg.max_position_embeddings <= 0)
    return f.error("max_position_embeddings", "must be positive");
  if (mistral) {
    // We run full causal attention. Mistral's sliding window only differs from it past the
    // window, so capping the context at the window keeps outputs exact (Mistral 7B v0.1: 4096).
    QUILT_ASSIGN_OR_RETURN(auto window, f.opt_int("sliding_window"));
    if (window && *window <= 0) return f.error("sliding_window", "must be positive or null");
    if (window && *window < cfg.max_position_embeddings) cfg.max_position_embeddings = *window;
  }

  QUILT_ASSIGN_OR_RETURN(auto eps, f.opt_double("rms_norm_eps"));
  cfg.rms_norm_eps = eps.value_or(1e-6);
  if (!(cfg.rms_norm_eps > 0)) return f.error("rms_norm_eps", "must be positive");

  QUILT_ASSIGN_OR_RETURN(auto tie, f.opt_bool("tie_word_embeddings"));
  cfg.tie_word_embeddings = tie.value_or(false);

  QUILT_ASSIGN_OR_RETURN(auto dtype, f.opt_string("torch_dtype"));
  if (!dtype) {
    QUILT_ASSIGN_OR_RETURN(dtype, f.opt_string("dtype"));  // transformers >= 5 spelling
  }
  cfg.torch_dtype = dtype.value_or("");

  // Features the forward pass does not implement: refuse rather than compute something else.
  QUILT_ASSIGN_OR_RETURN(auto act, f.opt_string("hidden_act"));
  if (act && *act != "silu") {
    return f.unsupported("hidden_act", "'" + *act + "' is not supported (only silu)");
  }
  QUILT_ASSIGN_OR_RETURN(auto attention_bias, f.opt_bool("attention_bias"));
  if (attention_bias.value_or(false)) {
    return f.unsupported("attention_bias", "true is not supported yet");
  }
  QUILT_ASSIGN_OR_RETURN(auto mlp_bias, f.opt_bool("mlp_bias"));
  if (mlp_bias.value_or(false)) return f.unsupported("mlp_bias", "true is not supported yet");
  if (f.has("quantization_config")) {
    return f.unsupported("quantization_config",
                         "is present: quantized checkpoints are not "
                         "supported");
  }

  QUILT_RETURN_IF_ERROR(parse_rope(f, source, &cfg.rope));
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
