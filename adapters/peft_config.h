// PEFT LoRA adapter_config.json: parsing, and which modules of a base model it targets (peft 0.21).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/model/lora_weights.h"
#include "engine/model/model_config.h"

namespace quilt::adapters {

// The fields of a LoraConfig that decide which modules get LoRA and with what rank and scale.
// Features Quilt cannot serve (DoRA, biases, modules_to_save, ...) have no field: parsing refuses
// them. Defaults are LoraConfig's.
struct PeftConfig {
  std::string peft_type = "LORA";
  int64_t r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;  // scale = alpha / sqrt(r) instead of alpha / r

  // target_modules takes one of three forms; at most one of these is set.
  std::vector<std::string> target_modules_list;     // a module matches its full name or a ".suffix"
  std::optional<std::string> target_modules_regex;  // Python regex that must fullmatch the name
  bool target_all_linear = false;                   // "all-linear": the seven projections

  // exclude_modules: same matching as target_modules' list / regex forms; wins over targets.
  std::vector<std::string> exclude_modules_list;
  std::optional<std::string> exclude_modules_regex;

  std::optional<std::vector<int64_t>> layers_to_transform;  // nullopt: every layer
  std::vector<std::string> layers_pattern;  // the layer-list attribute name(s); empty: any

  // Keys are regexes matched against the module name as PEFT does (`(.*\.)?(key)$`).
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  // The keys above in file order: PEFT uses the first key that matches. Keys missing here are
  // tried after these, in map order (for configs built in code).
  std::vector<std::string> rank_pattern_order;
  std::vector<std::string> alpha_pattern_order;

  // Only meaningful for Conv1D (GPT-2) layers; on nn.Linear PEFT warns and uses false. So do we.
  bool fan_in_fan_out = false;
};

// Parses adapter_config.json text. `source` names the file in messages. Malformed JSON or a field
// of the wrong type: InvalidArgument naming the field. A well-formed config asking for something
// Quilt does not serve (peft_type other than LORA, use_dora, modules_to_save, bias other than
// "none", lora_bias, layer_replication, trainable_token_indices, target_parameters,
// alora_invocation_tokens, use_qalora, an init_lora_weights that rewrites the base weights):
// Unprocessable naming the field.
Result<PeftConfig> parse_peft_config(const std::string& json_text, const std::string& source);

// Rank and alpha of one (layer, projection); rank 0: not targeted. The projections of one fused
// module are targeted together, with the module's rank and alpha.
struct ModuleTarget {
  int64_t rank = 0;
  double alpha = 0;
};
using TargetPlan = std::vector<std::array<ModuleTarget, engine::kNumProjections>>;  // [layer]

// "model.layers.3.self_attn.q_proj", "model.layers.3.mlp.down_proj": PEFT's module names.
std::string peft_module_name(int64_t layer, engine::Projection p);

// A linear module of the base model as PEFT names it, and the engine projections it computes:
// one, or for Phi-3's fused modules several, whose outputs are consecutive row blocks of the
// module's weight (qkv_proj: q, k, v; gate_up_proj: gate, up). A LoRA on such a module has one A
// and one B whose rows split the same way, so it becomes one engine LoRA per projection, each
// with the same A and its slice of B.
struct PeftModule {
  std::string name;  // "model.layers.3.self_attn.qkv_proj"
  int64_t layer = 0;
  std::vector<engine::Projection> projs;
};
std::vector<PeftModule> peft_linear_modules(const engine::ModelConfig& model);

// Applies target_modules, exclude_modules, layers_to_transform, rank_pattern and alpha_pattern to
// the base model's modules. Unprocessable (naming the field) when: r or a pattern rank <= 0, a
// layer index is not in the model, a target is embed_tokens / lm_head or another non-projection
// module, a list entry or the regex matches no module, or nothing is targeted. A pattern that is
// not a valid regex, or layers_to_transform with a string target_modules: InvalidArgument.
Result<TargetPlan> resolve_targets(const PeftConfig& cfg, const engine::ModelConfig& model);

}  // namespace quilt::adapters
