// adapter_config.json parsing and PEFT's module-targeting rules over a Llama-family base model.
#include "adapters/peft_config.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <set>
#include <string_view>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

namespace quilt::adapters {
namespace {

// Ordered: rank_pattern / alpha_pattern are first-match-wins in file order.
using json = nlohmann::ordered_json;
using engine::Projection;

// A compiled PCRE2 pattern used with Python `re` semantics (PEFT's patterns are Python regexes;
// PCRE2 reads the syntax PEFT configs use: classes, groups, alternation, (?P<name>...)).
class Regex {
 public:
  // `what` names the field in the error message.
  static Result<Regex> compile(const std::string& pattern, const std::string& what) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof(buf));
      return Status::InvalidArgument(
          what + " '" + pattern + "' is not a valid regex: " + reinterpret_cast<const char*>(buf) +
          " at offset " + std::to_string(offset));
    }
    return Regex(code);
  }

  // Python re.fullmatch.
  bool full_match(std::string_view s) const {
    return run(s, PCRE2_ANCHORED | PCRE2_ENDANCHORED, nullptr);
  }
  // Python re.match (anchored at the start only); stores group 1 when `group1` is given.
  bool match(std::string_view s, std::string* group1 = nullptr) const {
    return run(s, PCRE2_ANCHORED, group1);
  }

 private:
  struct CodeFree {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  struct DataFree {
    void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
  };
  explicit Regex(pcre2_code* code) : code_(code) {}

  bool run(std::string_view s, uint32_t options, std::string* group1) const {
    std::unique_ptr<pcre2_match_data, DataFree> md(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr));
    if (!md) return false;
    const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                               options, md.get(), nullptr);
    if (rc <= 0) return false;  // no match, or a match-limit error on a pathological pattern
    if (group1 != nullptr) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      if (rc < 2 || ov[2] == PCRE2_UNSET) return false;
      group1->assign(s.substr(ov[2], ov[3] - ov[2]));
    }
    return true;
  }

  std::unique_ptr<pcre2_code, CodeFree> code_;
};

// Typed reads of adapter_config.json fields; errors name the file and field. Absent and null read
// as "not given", as in LoraConfig.
class Fields {
 public:
  Fields(const json& obj, const std::string& source) : obj_(obj), source_(source) {}

  const json* get(const char* key) const {
    auto it = obj_.find(key);
    return (it == obj_.end() || it->is_null()) ? nullptr : &*it;
  }
  Status invalid(const std::string& field, const std::string& why) const {
    return Status::InvalidArgument(source_ + ": " + field + " " + why);
  }
  Status unsupported(const std::string& field, const std::string& why) const {
    return Status::Unprocessable(source_ + ": " + field + " " + why);
  }

  Status read_bool(const char* key, bool* out) const {
    if (const json* v = get(key)) {
      if (!v->is_boolean()) return invalid(key, "must be true or false");
      *out = v->get<bool>();
    }
    return Status::OK();
  }
  Status read_int(const char* key, int64_t* out) const {
    if (const json* v = get(key)) {
      if (!v->is_number_integer()) return invalid(key, "must be an integer");
      *out = v->get<int64_t>();
    }
    return Status::OK();
  }
  Status read_number(const char* key, double* out) const {
    if (const json* v = get(key)) {
      if (!v->is_number()) return invalid(key, "must be a number");
      *out = v->get<double>();
    }
    return Status::OK();
  }
  // A string (into `str`) or a list of strings (into `list`).
  Status read_string_or_list(const char* key, std::optional<std::string>* str,
                             std::vector<std::string>* list) const {
    const json* v = get(key);
    if (v == nullptr) return Status::OK();
    if (v->is_string()) {
      *str = v->get<std::string>();
      return Status::OK();
    }
    if (!v->is_array()) return invalid(key, "must be a string or a list of strings");
    for (const auto& e : *v) {
      if (!e.is_string()) return invalid(key, "must hold only strings");
      list->push_back(e.get<std::string>());
    }
    return Status::OK();
  }

 private:
  const json& obj_;
  const std::string& source_;
};

// Refuses the LoraConfig features whose forward pass Quilt does not compute. Each would silently
// give wrong outputs if ignored.
Status reject_unsupported(const Fields& f) {
  bool flag = false;
  QUILT_RETURN_IF_ERROR(f.read_bool("use_dora", &flag));
  if (flag) return f.unsupported("use_dora", "is true: DoRA adapters are not supported");
  QUILT_RETURN_IF_ERROR(f.read_bool("lora_bias", &flag));
  if (flag) return f.unsupported("lora_bias", "is true: LoRA bias terms are not supported");
  QUILT_RETURN_IF_ERROR(f.read_bool("use_qalora", &flag));
  if (flag) return f.unsupported("use_qalora", "is true: QA-LoRA is not supported");
  if (const json* bias = f.get("bias")) {
    if (!bias->is_string()) return f.invalid("bias", "must be a string");
    if (bias->get<std::string>() != "none") {
      return f.unsupported("bias", "is \"" + bias->get<std::string>() +
                                       "\": only \"none\" is supported (trained biases would "
                                       "change the base model)");
    }
  }
  if (const json* m = f.get("modules_to_save")) {
    if (!m->is_array()) return f.invalid("modules_to_save", "must be a list or null");
    if (!m->empty()) {
      return f.unsupported("modules_to_save",
                           "is not empty: adapters that replace whole base "
                           "modules are not supported");
    }
  }
  // Non-null and non-empty means the feature is on.
  const std::pair<const char*, const char*> kOnWhenSet[] = {
      {"layer_replication", "changes the base model's layer stack"},
      {"trainable_token_indices", "trains embedding rows"},
      {"target_parameters", "targets raw parameters instead of linear modules"},
      {"alora_invocation_tokens", "(activated LoRA) is not supported"},
  };
  for (const auto& [key, why] : kOnWhenSet) {
    const json* v = f.get(key);
    if (v != nullptr && !((v->is_array() || v->is_object()) && v->empty())) {
      return f.unsupported(key, std::string("is set: ") + why);
    }
  }
  // These initialisations rewrite the base weights (W - B0·A0, or a quantized W); the adapter is
  // only right on that rewritten base, which a shared base model cannot be.
  if (const json* init = f.get("init_lora_weights"); init != nullptr && init->is_string()) {
    const std::string s = init->get<std::string>();
    for (const char* prefix : {"pissa", "olora", "corda", "loftq"}) {
      if (s.rfind(prefix, 0) == 0) {
        return f.unsupported("init_lora_weights", "is \"" + s +
                                                      "\": it modifies the base "
                                                      "weights; convert the adapter to plain LoRA");
      }
    }
  }
  return Status::OK();
}

// Reads rank_pattern or alpha_pattern into `values` and `order`.
template <typename T>
Status read_pattern(const Fields& f, const char* key, std::map<std::string, T>* values,
                    std::vector<std::string>* order) {
  const json* v = f.get(key);
  if (v == nullptr) return Status::OK();
  if (!v->is_object()) return f.invalid(key, "must be an object");
  for (const auto& [k, val] : v->items()) {
    const bool ok = std::is_integral_v<T> ? val.is_number_integer() : val.is_number();
    if (!ok) {
      return f.invalid(std::string(key) + "[\"" + k + "\"]",
                       std::is_integral_v<T> ? "must be an integer" : "must be a number");
    }
    (*values)[k] = val.template get<T>();
    order->push_back(k);
  }
  return Status::OK();
}

// What a module of the base model is, for deciding whether LoRA on it can be served.
enum class ModuleKind { kProjection, kEmbedding, kOther };
struct BaseModule {
  std::string name;
  ModuleKind kind;
  int64_t layer = -1;
  std::vector<Projection> projs = {};  // kProjection: what the module computes
};

// Every named module of the base model except the root, as PEFT sees them (the supported
// architectures all share this tree; they differ in which norms and projections a layer has).
std::vector<BaseModule> base_modules(const engine::ModelConfig& m) {
  std::vector<BaseModule> out;
  out.push_back({"model", ModuleKind::kOther});
  out.push_back({"model.embed_tokens", ModuleKind::kEmbedding});
  out.push_back({"model.layers", ModuleKind::kOther});
  const std::vector<PeftModule> linear = peft_linear_modules(m);
  size_t next = 0;
  for (int64_t i = 0; i < m.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    out.push_back({p, ModuleKind::kOther});
    out.push_back({p + ".self_attn", ModuleKind::kOther});
    out.push_back({p + ".mlp", ModuleKind::kOther});
    out.push_back({p + ".mlp.act_fn", ModuleKind::kOther});
    out.push_back({p + ".input_layernorm", ModuleKind::kOther});
    out.push_back({p + ".post_attention_layernorm", ModuleKind::kOther});
    if (m.sandwich_norms) {
      out.push_back({p + ".pre_feedforward_layernorm", ModuleKind::kOther});
      out.push_back({p + ".post_feedforward_layernorm", ModuleKind::kOther});
    }
    if (m.qk_norm) {
      out.push_back({p + ".self_attn.q_norm", ModuleKind::kOther});
      out.push_back({p + ".self_attn.k_norm", ModuleKind::kOther});
    }
    for (; next < linear.size() && linear[next].layer == i; ++next) {
      out.push_back({linear[next].name, ModuleKind::kProjection, i, linear[next].projs});
    }
  }
  out.push_back({"model.norm", ModuleKind::kOther});
  out.push_back({"model.rotary_emb", ModuleKind::kOther});
  out.push_back({"lm_head", ModuleKind::kEmbedding});
  return out;
}

bool ends_with_dotted(const std::string& name, const std::string& suffix) {
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         name[name.size() - suffix.size() - 1] == '.';
}
bool list_matches(const std::string& name, const std::vector<std::string>& list) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& e) { return name == e || ends_with_dotted(name, e); });
}

template <typename T>
std::vector<std::string> keys_in_order(const std::map<std::string, T>& values,
                                       const std::vector<std::string>& order) {
  std::vector<std::string> keys;
  for (const auto& k : order) {
    if (values.count(k) && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  for (const auto& [k, v] : values) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  return keys;
}

// PEFT's get_pattern_key: the first key k with re.match(rf"(.*\.)?({k})$", name).
template <typename T>
Result<std::vector<std::pair<Regex, T>>> compile_pattern(const std::map<std::string, T>& values,
                                                         const std::vector<std::string>& order,
                                                         const char* field) {
  std::vector<std::pair<Regex, T>> out;
  for (const auto& k : keys_in_order(values, order)) {
    QUILT_ASSIGN_OR_RETURN(Regex re, Regex::compile("(.*\\.)?(" + k + ")$",
                                                    std::string(field) + " key '" + k + "' as"));
    out.emplace_back(std::move(re), values.at(k));
  }
  return out;
}

}  // namespace

std::string peft_module_name(int64_t layer, Projection p) {
  const bool attn =
      p == Projection::kQ || p == Projection::kK || p == Projection::kV || p == Projection::kO;
  return "model.layers." + std::to_string(layer) + (attn ? ".self_attn." : ".mlp.") +
         engine::projection_name(p);
}

std::vector<PeftModule> peft_linear_modules(const engine::ModelConfig& model) {
  std::vector<PeftModule> out;
  for (int64_t i = 0; i < model.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    if (model.fused_projections) {  // Phi-3
      out.push_back(
          {p + ".self_attn.qkv_proj", i, {Projection::kQ, Projection::kK, Projection::kV}});
      out.push_back({peft_module_name(i, Projection::kO), i, {Projection::kO}});
      out.push_back({p + ".mlp.gate_up_proj", i, {Projection::kGate, Projection::kUp}});
      out.push_back({peft_module_name(i, Projection::kDown), i, {Projection::kDown}});
      continue;
    }
    for (int j = 0; j < engine::kNumProjections; ++j) {
      const auto proj = static_cast<Projection>(j);
      out.push_back({peft_module_name(i, proj), i, {proj}});
    }
  }
  return out;
}

Result<PeftConfig> parse_peft_config(const std::string& json_text, const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(source + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(source + ": not a JSON object");
  Fields f(j, source);
  PeftConfig cfg;

  const json* type = f.get("peft_type");
  if (type == nullptr) return f.invalid("peft_type", "is required");
  if (!type->is_string()) return f.invalid("peft_type", "must be a string");
  cfg.peft_type = type->get<std::string>();
  if (cfg.peft_type != "LORA") {
    return f.unsupported("peft_type", "is \"" + cfg.peft_type + "\": only LORA is supported");
  }
  QUILT_RETURN_IF_ERROR(reject_unsupported(f));

  QUILT_RETURN_IF_ERROR(f.read_int("r", &cfg.r));
  QUILT_RETURN_IF_ERROR(f.read_number("lora_alpha", &cfg.lora_alpha));
  QUILT_RETURN_IF_ERROR(f.read_bool("use_rslora", &cfg.use_rslora));
  QUILT_RETURN_IF_ERROR(f.read_bool("fan_in_fan_out", &cfg.fan_in_fan_out));

  std::optional<std::string> target;
  QUILT_RETURN_IF_ERROR(f.read_string_or_list("target_modules", &target, &cfg.target_modules_list));
  if (target) {
    std::string lower = *target;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (lower == "all-linear") {
      cfg.target_all_linear = true;
    } else {
      cfg.target_modules_regex = std::move(target);
    }
  } else if (f.get("target_modules") == nullptr) {
    // LoraConfig without target_modules uses PEFT's per-model default, q_proj and v_proj for
    // llama and mistral (saved adapters normally spell it out).
    cfg.target_modules_list = {"q_proj", "v_proj"};
  }
  QUILT_RETURN_IF_ERROR(f.read_string_or_list("exclude_modules", &cfg.exclude_modules_regex,
                                              &cfg.exclude_modules_list));

  if (const json* layers = f.get("layers_to_transform")) {
    std::vector<int64_t> ids;
    if (layers->is_number_integer()) {
      ids.push_back(layers->get<int64_t>());
    } else if (layers->is_array()) {
      for (const auto& e : *layers) {
        if (!e.is_number_integer()) return f.invalid("layers_to_transform", "must hold integers");
        ids.push_back(e.get<int64_t>());
      }
    } else {
      return f.invalid("layers_to_transform", "must be an integer or a list of integers");
    }
    if (!ids.empty()) cfg.layers_to_transform = std::move(ids);  // PEFT: [] means every layer
  }
  std::optional<std::string> layers_pattern;
  QUILT_RETURN_IF_ERROR(
      f.read_string_or_list("layers_pattern", &layers_pattern, &cfg.layers_pattern));
  if (layers_pattern && !layers_pattern->empty()) cfg.layers_pattern.push_back(*layers_pattern);

  QUILT_RETURN_IF_ERROR(
      read_pattern(f, "rank_pattern", &cfg.rank_pattern, &cfg.rank_pattern_order));
  QUILT_RETURN_IF_ERROR(
      read_pattern(f, "alpha_pattern", &cfg.alpha_pattern, &cfg.alpha_pattern_order));
  return cfg;
}

Result<TargetPlan> resolve_targets(const PeftConfig& cfg, const engine::ModelConfig& model) {
  const std::string arch = model.architecture.empty() ? "the base model" : model.architecture;
  if (cfg.r <= 0) {
    return Status::Unprocessable("r must be positive, got " + std::to_string(cfg.r));
  }
  const bool string_target = cfg.target_all_linear || cfg.target_modules_regex.has_value();
  if (string_target && cfg.layers_to_transform) {
    // LoraConfig raises this too: PEFT never applies layer indexes to a string target_modules.
    return Status::InvalidArgument("layers_to_transform needs a list target_modules");
  }
  if (!cfg.layers_pattern.empty() && !cfg.layers_to_transform) {
    return Status::InvalidArgument("layers_pattern needs layers_to_transform");
  }
  if (cfg.layers_to_transform) {
    for (int64_t i : *cfg.layers_to_transform) {
      if (i < 0 || i >= model.num_layers) {
        return Status::Unprocessable("layers_to_transform: layer " + std::to_string(i) +
                                     " is not a layer of " + arch + ", which has " +
                                     std::to_string(model.num_layers) + " layers");
      }
    }
  }
  for (const auto& [key, rank] : cfg.rank_pattern) {
    if (rank <= 0) {
      return Status::Unprocessable("rank_pattern[\"" + key + "\"] must be positive, got " +
                                   std::to_string(rank));
    }
  }

  std::optional<Regex> target_re, exclude_re;
  if (cfg.target_modules_regex) {
    QUILT_ASSIGN_OR_RETURN(target_re, Regex::compile(*cfg.target_modules_regex, "target_modules"));
  }
  if (cfg.exclude_modules_regex) {
    QUILT_ASSIGN_OR_RETURN(exclude_re,
                           Regex::compile(*cfg.exclude_modules_regex, "exclude_modules"));
  }
  // PEFT's layer-index extraction: `.*\.[^.]*\.(\d+)\.` by default, else `.*\.{pattern}\.(\d+)\.`.
  std::vector<Regex> layer_res;
  if (cfg.layers_pattern.empty()) {
    QUILT_ASSIGN_OR_RETURN(Regex re, Regex::compile(".*\\.[^.]*\\.(\\d+)\\.", "layers_pattern"));
    layer_res.push_back(std::move(re));
  }
  for (const auto& p : cfg.layers_pattern) {
    QUILT_ASSIGN_OR_RETURN(Regex re,
                           Regex::compile(".*\\." + p + "\\.(\\d+)\\.", "layers_pattern"));
    layer_res.push_back(std::move(re));
  }
  QUILT_ASSIGN_OR_RETURN(auto rank_res,
                         compile_pattern(cfg.rank_pattern, cfg.rank_pattern_order, "rank_pattern"));
  QUILT_ASSIGN_OR_RETURN(
      auto alpha_res, compile_pattern(cfg.alpha_pattern, cfg.alpha_pattern_order, "alpha_pattern"));

  TargetPlan plan(static_cast<size_t>(model.num_layers));
  std::set<std::string> entries_seen;  // list entries that name some module of the model
  bool any = false;
  for (const BaseModule& m : base_modules(model)) {
    bool targeted = false;
    if (cfg.target_all_linear) {
      targeted = m.kind == ModuleKind::kProjection;  // every nn.Linear but the output head
    } else if (target_re) {
      targeted = target_re->full_match(m.name);
    } else {
      for (const auto& e : cfg.target_modules_list) {
        if (m.name == e || ends_with_dotted(m.name, e)) entries_seen.insert(e);
      }
      if (std::find(cfg.target_modules_list.begin(), cfg.target_modules_list.end(), m.name) !=
          cfg.target_modules_list.end()) {
        targeted = true;  // an exact module name: PEFT skips the layer filter
      } else if (list_matches(m.name, cfg.target_modules_list)) {
        targeted = true;
        if (cfg.layers_to_transform) {
          std::string index;
          targeted = false;
          for (const auto& re : layer_res) {
            if (re.match(m.name, &index)) break;
            index.clear();
          }
          if (!index.empty()) {
            const int64_t layer = index.size() > 9 ? -1 : std::stoll(index);
            const auto& ids = *cfg.layers_to_transform;
            targeted = std::find(ids.begin(), ids.end(), layer) != ids.end();
          }
        }
      }
    }
    // exclude_modules wins over every form of target_modules.
    if (targeted && (exclude_re ? exclude_re->full_match(m.name)
                                : list_matches(m.name, cfg.exclude_modules_list))) {
      targeted = false;
    }
    if (!targeted) continue;
    if (m.kind == ModuleKind::kEmbedding) {
      return Status::Unprocessable("target_modules targets " + m.name +
                                   ": LoRA on embed_tokens / lm_head is not supported");
    }
    if (m.kind == ModuleKind::kOther) {
      return Status::Unprocessable("target_modules targets " + m.name +
                                   ", which is not a linear projection of " + arch);
    }
    ModuleTarget t{cfg.r, cfg.lora_alpha};
    for (const auto& [re, rank] : rank_res) {
      if (re.match(m.name)) {
        t.rank = rank;
        break;
      }
    }
    for (const auto& [re, alpha] : alpha_res) {
      if (re.match(m.name)) {
        t.alpha = alpha;
        break;
      }
    }
    for (Projection proj : m.projs) plan[static_cast<size_t>(m.layer)][static_cast<int>(proj)] = t;
    any = true;
  }

  for (const auto& e : cfg.target_modules_list) {
    if (!entries_seen.count(e)) {
      return Status::Unprocessable("target_modules entry '" + e + "' matches no module of " + arch);
    }
  }
  if (!any) {
    if (target_re) {
      return Status::Unprocessable("target_modules regex '" + *cfg.target_modules_regex +
                                   "' matches no module of " + arch);
    }
    return Status::Unprocessable("target_modules selects no module of " + arch);
  }
  return plan;
}

}  // namespace quilt::adapters
