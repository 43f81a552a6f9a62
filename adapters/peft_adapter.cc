// PEFT adapter tensors → engine LoraWeights: name mapping, shape checks, dtype conversion, Bᵀ.
#include "adapters/peft_adapter.h"
#include "common/files.h"

#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

namespace quilt::adapters {
namespace {

using engine::Projection;
using engine::TensorView;

constexpr std::string_view kTensorPrefix = "base_model.model.";

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

struct LoraTensorName {
  std::string module;  // "model.layers.0.self_attn.q_proj"
  bool is_b = false;
};

// "base_model.model.<module>.lora_{A,B}[.<adapter>].weight" → module and which matrix.
std::optional<LoraTensorName> parse_tensor_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".weight";
  if (name.size() <= kTensorPrefix.size() + kSuffix.size() || !name.starts_with(kTensorPrefix) ||
      !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  std::string_view mid =
      name.substr(kTensorPrefix.size(), name.size() - kTensorPrefix.size() - kSuffix.size());
  for (int attempt = 0; attempt < 2; ++attempt) {  // second try: skip an adapter-name segment
    const size_t dot = mid.rfind('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const std::string_view last = mid.substr(dot + 1);
    if (last == "lora_A" || last == "lora_B") {
      return LoraTensorName{std::string(mid.substr(0, dot)), last == "lora_B"};
    }
    mid = mid.substr(0, dot);
  }
  return std::nullopt;
}

// The layer index of "model.layers.N....", or -1.
int64_t layer_of(std::string_view module) {
  constexpr std::string_view kLayers = "model.layers.";
  if (!module.starts_with(kLayers)) return -1;
  module.remove_prefix(kLayers.size());
  int64_t n = 0;
  size_t i = 0;
  for (; i < module.size() && i < 9 && module[i] >= '0' && module[i] <= '9'; ++i) {
    n = n * 10 + (module[i] - '0');
  }
  return (i == 0 || i >= module.size() || module[i] != '.') ? -1 : n;
}

struct FoundPair {
  const TensorView* a = nullptr;
  const TensorView* b = nullptr;
};

// Checks shape and values of one matrix and returns it as float32.
Result<std::vector<float>> read_matrix(const TensorView& t, const std::vector<int64_t>& expected,
                                       const char* what) {
  if (t.shape != expected) {
    return Status::Unprocessable("tensor '" + t.name + "' has shape " + shape_string(t.shape) +
                                 ", expected " + shape_string(expected) + " (" + what + ")");
  }
  std::vector<float> v = engine::to_float32(t);
  for (float x : v) {
    if (!std::isfinite(x)) {
      return Status::Unprocessable("tensor '" + t.name + "' holds a non-finite value");
    }
  }
  return v;
}

Result<std::shared_ptr<const engine::LoraWeights>> load(const PeftConfig& cfg,
                                                        const engine::TensorStore& weights,
                                                        const engine::ModelConfig& model,
                                                        std::string name) {
  QUILT_ASSIGN_OR_RETURN(TargetPlan plan, resolve_targets(cfg, model));
  // fan_in_fan_out only transposes Conv1D weights; every projection here is an nn.Linear, where
  // PEFT warns and resets it to false, leaving A/B shapes unchanged. So it is ignored here.

  const std::vector<PeftModule> linear = peft_linear_modules(model);
  std::map<std::string, size_t> modules;  // name → index into linear
  for (size_t i = 0; i < linear.size(); ++i) modules[linear[i].name] = i;
  auto targeted = [&](const PeftModule& m) {
    return plan[static_cast<size_t>(m.layer)][static_cast<int>(m.projs[0])].rank > 0;
  };

  // Every tensor must be an expected lora_A / lora_B: anything else (DoRA magnitudes, embedding
  // LoRA, biases, ...) would be part of the trained function that we would silently drop.
  std::vector<FoundPair> found(linear.size());
  for (const auto& [tname, view] : weights.tensors()) {
    auto parsed = parse_tensor_name(tname);
    if (!parsed) {
      return Status::Unprocessable("tensor '" + tname +
                                   "' is not a lora_A/lora_B weight of a linear projection");
    }
    auto it = modules.find(parsed->module);
    if (it == modules.end()) {
      const int64_t layer = layer_of(parsed->module);
      if (layer >= model.num_layers) {
        return Status::Unprocessable("tensor '" + tname + "' is for layer " +
                                     std::to_string(layer) + ", but the base model has " +
                                     std::to_string(model.num_layers) + " layers");
      }
      return Status::Unprocessable("tensor '" + tname + "' belongs to " + parsed->module +
                                   ", which is not a linear projection of the base model (" +
                                   model.architecture + ")");
    }
    if (!targeted(linear[it->second])) {
      return Status::Unprocessable("tensor '" + tname + "' belongs to " + parsed->module +
                                   ", which the adapter config does not target");
    }
    const TensorView*& slot = parsed->is_b ? found[it->second].b : found[it->second].a;
    if (slot != nullptr) {
      return Status::Unprocessable("tensors '" + slot->name + "' and '" + tname +
                                   "' are the same matrix");
    }
    slot = &view;
  }

  auto out = std::make_shared<engine::LoraWeights>();
  out->name = std::move(name);
  out->layers.resize(plan.size());
  for (size_t i = 0; i < linear.size(); ++i) {
    const PeftModule& module = linear[i];
    if (!targeted(module)) continue;
    const size_t l = static_cast<size_t>(module.layer);
    const ModuleTarget& target = plan[l][static_cast<int>(module.projs[0])];
    const FoundPair& f = found[i];
    if (f.a == nullptr || f.b == nullptr) {
      return Status::Unprocessable("missing tensor '" + std::string(kTensorPrefix) + module.name +
                                   (f.a == nullptr ? ".lora_A" : ".lora_B") +
                                   ".weight' for targeted module " + module.name);
    }
    const int64_t r = target.rank;
    // A fused module's projections all read the same input; its output rows are theirs in turn.
    const int64_t in = engine::projection_in_dim(model, module.projs[0]);
    int64_t out_dim = 0;
    for (Projection proj : module.projs) out_dim += engine::projection_out_dim(model, proj);
    QUILT_ASSIGN_OR_RETURN(std::vector<float> a,
                           read_matrix(*f.a, {r, in}, "lora_A is [rank, in_features]"));
    QUILT_ASSIGN_OR_RETURN(std::vector<float> b,
                           read_matrix(*f.b, {out_dim, r}, "lora_B is [out_features, rank]"));
    const double denom =
        cfg.use_rslora ? std::sqrt(static_cast<double>(r)) : static_cast<double>(r);
    int64_t row0 = 0;  // this projection's first row of B
    for (size_t k = 0; k < module.projs.size(); ++k) {
      const Projection proj = module.projs[k];
      const int64_t rows = engine::projection_out_dim(model, proj);
      engine::LoraModule& m = out->layers[l][static_cast<int>(proj)];
      m.rank = r;
      m.scale = static_cast<float>(target.alpha / denom);
      m.a = k + 1 < module.projs.size() ? a : std::move(a);  // each projection its own A
      // Bᵀ: the expand kernels read one rank row of `rows` contiguous values.
      m.bt.resize(static_cast<size_t>(r * rows));
      for (int64_t o = 0; o < rows; ++o) {
        for (int64_t j = 0; j < r; ++j) m.bt[j * rows + o] = b[(row0 + o) * r + j];
      }
      row0 += rows;
    }
  }
  return std::shared_ptr<const engine::LoraWeights>(std::move(out));
}

}  // namespace

Result<std::shared_ptr<const engine::LoraWeights>> load_peft_adapter(
    const PeftConfig& cfg, const engine::TensorStore& weights, const engine::ModelConfig& model,
    std::string name) {
  const std::string context = "adapter '" + name + "'";
  auto result = load(cfg, weights, model, std::move(name));
  if (!result.ok()) return result.status().with_context(context);
  return result;
}

Result<std::shared_ptr<const engine::LoraWeights>> load_peft_adapter_dir(
    const std::filesystem::path& dir, const engine::ModelConfig& model) {
  const std::filesystem::path d = dir.filename().empty() ? dir.parent_path() : dir;  // "x/" → "x"
  const auto config_path = d / "adapter_config.json";
  QUILT_ASSIGN_OR_RETURN(std::string text, quilt::read_file(config_path));
  QUILT_ASSIGN_OR_RETURN(PeftConfig cfg, parse_peft_config(text, config_path.string()));

  const auto weights_path = d / "adapter_model.safetensors";
  std::error_code ec;
  if (!std::filesystem::exists(weights_path, ec)) {
    if (std::filesystem::exists(d / "adapter_model.bin", ec)) {
      return Status::Unprocessable((d / "adapter_model.bin").string() +
                                   ": pickle checkpoints are not loaded; save the adapter with "
                                   "safe_serialization=True");
    }
    return Status::NotFound(weights_path.string() + ": no such file");
  }
  QUILT_ASSIGN_OR_RETURN(auto store, engine::TensorStore::open_file(weights_path));
  return load_peft_adapter(cfg, *store, model, d.filename().string());
}

}  // namespace quilt::adapters
