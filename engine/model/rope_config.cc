// RoPE parameters of config.json: the rope types (default, linear, llama3, longrope) in the old
// (rope_theta / rope_scaling) and transformers 5 (rope_parameters, per layer type) layouts, with
// transformers' defaults and validation.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/config_fields.h"

namespace quilt::engine::config_internal {
namespace {

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
                         json(*partial).dump() +
                             " is not supported (only 1.0: every dimension "
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
              : std::sqrt(
                    1 + std::log(rope->factor) /
                            std::log(static_cast<double>(rope->original_max_position_embeddings)));
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

}  // namespace

// rope_theta / rope_scaling (old layout) or rope_parameters (transformers >= 5): one table for
// every layer, or (Gemma 3) one per layer type: {"full_attention": {...}, "sliding_attention":
// {...}}, whose sliding one goes to cfg->local_rope. `default_theta` and `default_local_theta`
// are the architecture's defaults when nothing says.
Status parse_rope(const Fields& top, const std::string& source, bool per_layer_type_ok,
                  double default_theta, double default_local_theta, ModelConfig* cfg) {
  QUILT_ASSIGN_OR_RETURN(auto theta, top.opt_double("rope_theta"));
  QUILT_ASSIGN_OR_RETURN(auto top_partial, top.opt_double("partial_rotary_factor"));
  if (top_partial && *top_partial != 1.0) {
    return top.unsupported(
        "partial_rotary_factor",
        json(*top_partial).dump() + " is not supported (only 1.0: every dimension rotates)");
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
        return top.unsupported(
            "rope_parameters",
            "per-layer-type rope parameters are not supported for " + cfg->architecture);
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

}  // namespace quilt::engine::config_internal
