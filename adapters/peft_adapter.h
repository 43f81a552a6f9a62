// Loading a PEFT LoRA adapter directory into the engine's LoraWeights layout.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "adapters/peft_config.h"
#include "common/status.h"
#include "engine/model/lora_weights.h"
#include "engine/model/model_config.h"
#include "engine/weights/safetensors.h"

namespace quilt::adapters {

// Builds engine-layout weights (A as [rank, in], Bᵀ as [rank, out], float32, converted exactly
// from F32/F16/BF16), validated against the base model. Tensors are named as PEFT saves them,
// "base_model.model.<module>.lora_A.weight" / ".lora_B.weight", optionally with an adapter name
// before ".weight" (".lora_A.default.weight"). Unprocessable, naming the tensor: a tensor that is
// not the lora_A/lora_B of a targeted module (lora_embedding_A, lora_magnitude_vector, biases,
// layers past the model, ...), a targeted module without both tensors, a shape other than
// [rank, in] / [out, rank] (both shapes named), a non-finite value. Plus resolve_targets' errors.
// Every message starts with "adapter '<name>'". Thread-safe: no shared state.
Result<std::shared_ptr<const engine::LoraWeights>> load_peft_adapter(
    const PeftConfig& cfg, const engine::TensorStore& weights, const engine::ModelConfig& model,
    std::string name);

// DIR/adapter_config.json + DIR/adapter_model.safetensors; the name is DIR's last component.
Result<std::shared_ptr<const engine::LoraWeights>> load_peft_adapter_dir(
    const std::filesystem::path& dir, const engine::ModelConfig& model);

}  // namespace quilt::adapters
