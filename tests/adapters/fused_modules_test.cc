// PEFT adapters on Phi-3's fused modules: a LoRA on qkv_proj (gate_up_proj) becomes one engine
// LoRA per projection with the same A and its rows of B; targets the architecture lacks are
// refused with the module and the architecture named.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "adapters/peft_adapter.h"
#include "tests/engine/safetensors_writer.h"

namespace quilt::adapters {
namespace {

using engine::LoraModule;
using engine::ModelConfig;
using engine::Projection;
using testing::TestTensor;

const std::filesystem::path kModels = std::filesystem::path(QUILT_SOURCE_DIR) / "tests/data/models";

ModelConfig load_config(const std::string& name) {
  auto r = engine::load_model_config(kModels / name / "model");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : ModelConfig{};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// m's Bᵀ holds rows [row0, row0 + rows) of the file's B ([out, rank]) and m's A is the file's A.
void expect_slice(const LoraModule& m, const std::vector<float>& a, const std::vector<float>& b,
                  int64_t rank, int64_t row0, int64_t rows, const std::string& what) {
  ASSERT_EQ(m.rank, rank) << what;
  EXPECT_EQ(m.a, a) << what;
  ASSERT_EQ(m.bt.size(), static_cast<size_t>(rank * rows)) << what;
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t j = 0; j < rank; ++j) {
      ASSERT_EQ(m.bt[j * rows + o], b[(row0 + o) * rank + j]) << what << " o=" << o << " j=" << j;
    }
  }
}

TEST(FusedModulesTest, Phi3QkvAndGateUpLoraSplitIntoProjectionsByRows) {
  const ModelConfig cfg = load_config("phi3");
  ASSERT_TRUE(cfg.fused_projections);
  const auto dir = kModels / "phi3/adapters/all-bf16-r16";
  auto w = load_peft_adapter_dir(dir, cfg);
  ASSERT_TRUE(w.ok()) << w.status().message();
  auto store = engine::TensorStore::open_file(dir / "adapter_model.safetensors");
  ASSERT_TRUE(store.ok());
  const int64_t q = cfg.q_dim(), kv = cfg.kv_dim(), inter = cfg.intermediate_size;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "base_model.model.model.layers." + std::to_string(l);
    const auto tensor = [&](const std::string& name) {
      const engine::TensorView* t = (*store)->find(p + name);
      EXPECT_NE(t, nullptr) << p + name;
      return t ? engine::to_float32(*t) : std::vector<float>{};
    };
    const auto& layer = (*w)->layers[static_cast<size_t>(l)];
    const auto qkv_a = tensor(".self_attn.qkv_proj.lora_A.weight");
    const auto qkv_b = tensor(".self_attn.qkv_proj.lora_B.weight");
    expect_slice(layer[static_cast<int>(Projection::kQ)], qkv_a, qkv_b, 16, 0, q, "q");
    expect_slice(layer[static_cast<int>(Projection::kK)], qkv_a, qkv_b, 16, q, kv, "k");
    expect_slice(layer[static_cast<int>(Projection::kV)], qkv_a, qkv_b, 16, q + kv, kv, "v");
    const auto gu_a = tensor(".mlp.gate_up_proj.lora_A.weight");
    const auto gu_b = tensor(".mlp.gate_up_proj.lora_B.weight");
    expect_slice(layer[static_cast<int>(Projection::kGate)], gu_a, gu_b, 16, 0, inter, "gate");
    expect_slice(layer[static_cast<int>(Projection::kUp)], gu_a, gu_b, 16, inter, inter, "up");
    EXPECT_EQ(layer[static_cast<int>(Projection::kO)].rank, 16);
    EXPECT_EQ(layer[static_cast<int>(Projection::kDown)].rank, 16);
    EXPECT_FLOAT_EQ(layer[static_cast<int>(Projection::kQ)].scale, 2.0f);  // 32 / 16
  }
}

TEST(FusedModulesTest, LayersToTransformAndTargetsOnFusedModules) {
  const ModelConfig cfg = load_config("phi3");
  // o_proj, gate_up_proj and down_proj in layer 1 only.
  auto w = load_peft_adapter_dir(kModels / "phi3/adapters/layer1-r32", cfg);
  ASSERT_TRUE(w.ok()) << w.status().message();
  for (int p = 0; p < engine::kNumProjections; ++p) {
    EXPECT_EQ((*w)->layers[0][p].rank, 0) << p;
    const bool on = p >= static_cast<int>(Projection::kO);
    EXPECT_EQ((*w)->layers[1][p].rank, on ? 32 : 0) << p;
  }
  // qkv_proj only: q, k and v together.
  w = load_peft_adapter_dir(kModels / "phi3/adapters/chat-r8", cfg);
  ASSERT_TRUE(w.ok()) << w.status().message();
  for (int p = 0; p < engine::kNumProjections; ++p) {
    EXPECT_EQ((*w)->layers[0][p].rank, p <= static_cast<int>(Projection::kV) ? 8 : 0) << p;
  }
}

PeftConfig targeting(std::vector<std::string> modules) {
  PeftConfig c;
  c.r = 4;
  c.lora_alpha = 8;
  c.target_modules_list = std::move(modules);
  return c;
}

TEST(FusedModulesTest, TargetsTheArchitectureLacksAreRefusedNamingModuleAndArchitecture) {
  const ModelConfig phi3 = load_config("phi3");
  auto plan = resolve_targets(targeting({"q_proj", "v_proj"}), phi3);
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(plan.status().IsUnprocessable()) << plan.status().message();
  EXPECT_TRUE(contains(plan.status().message(), "q_proj")) << plan.status().message();
  EXPECT_TRUE(contains(plan.status().message(), "Phi3ForCausalLM")) << plan.status().message();

  const ModelConfig qwen3 = load_config("qwen3");
  plan = resolve_targets(targeting({"qkv_proj"}), qwen3);
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(plan.status().IsUnprocessable());
  EXPECT_TRUE(contains(plan.status().message(), "qkv_proj")) << plan.status().message();
  EXPECT_TRUE(contains(plan.status().message(), "Qwen3ForCausalLM")) << plan.status().message();

  // Norms are modules too, but not linear ones.
  PeftConfig regex;
  regex.target_modules_regex = ".*q_norm";
  plan = resolve_targets(regex, qwen3);
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(contains(plan.status().message(), "q_norm")) << plan.status().message();
}

TEST(FusedModulesTest, FusedLoraBWithTheWrongRowCountIsRefused) {
  const ModelConfig cfg = load_config("phi3");
  PeftConfig c = targeting({"qkv_proj"});
  c.layers_to_transform = std::vector<int64_t>{0};
  const std::string base = "base_model.model.model.layers.0.self_attn.qkv_proj";
  const int64_t hidden = cfg.hidden_size;
  std::vector<TestTensor> tensors = {
      {base + ".lora_A.weight", "F32", {4, hidden}, testing::ramp(static_cast<size_t>(4 * hidden))},
      // q rows only: k and v are missing.
      {base + ".lora_B.weight",
       "F32",
       {cfg.q_dim(), 4},
       testing::ramp(static_cast<size_t>(cfg.q_dim() * 4))}};
  auto store = engine::TensorStore::from_bytes(testing::make_safetensors(tensors), "mem");
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto w = load_peft_adapter(c, **store, cfg, "short-b");
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(w.status().IsUnprocessable());
  EXPECT_TRUE(contains(w.status().message(), "[128, 4]")) << w.status().message();
}

}  // namespace
}  // namespace quilt::adapters
