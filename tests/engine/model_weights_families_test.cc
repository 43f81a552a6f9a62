// The tensors each architecture's fixture checkpoint is found by (tests/data/models): fused
// Phi-3 projections, Qwen2 biases, q/k norms, Gemma's feed-forward norms, tied embeddings; and a
// missing tensor of a role the config asks for is an error naming it.
#include <gtest/gtest.h>

#include "engine/model/model_weights.h"
#include "tests/engine/safetensors_writer.h"

namespace quilt::engine {
namespace {

const std::filesystem::path kModels = std::filesystem::path(QUILT_SOURCE_DIR) / "tests/data/models";

struct Loaded {
  ModelConfig cfg;
  std::unique_ptr<TensorStore> store;
};

Loaded open_fixture(const std::string& name) {
  Loaded out;
  auto cfg = load_model_config(kModels / name / "model");
  EXPECT_TRUE(cfg.ok()) << cfg.status().message();
  if (cfg.ok()) out.cfg = *cfg;
  auto store = TensorStore::open_dir(kModels / name / "model");
  EXPECT_TRUE(store.ok()) << store.status().message();
  if (store.ok()) out.store = std::move(store).value();
  return out;
}

TEST(ModelWeightsFamiliesTest, EachArchitectureFindsItsRoles) {
  for (const char* name : {"qwen2", "qwen2.5-untied", "qwen3", "mistral", "mistral-nemo", "gemma2",
                           "gemma3", "phi3", "phi3-longrope"}) {
    SCOPED_TRACE(name);
    Loaded f = open_fixture(name);
    ASSERT_NE(f.store, nullptr);
    auto w = find_model_weights(*f.store, f.cfg);
    ASSERT_TRUE(w.ok()) << w.status().message();
    const ModelConfig& c = f.cfg;
    EXPECT_EQ(w->lm_head == w->embed, c.tie_word_embeddings);
    for (const LayerWeightViews& l : w->layers) {
      EXPECT_EQ(l.qkv != nullptr, c.fused_projections);
      EXPECT_EQ(l.gate_up != nullptr, c.fused_projections);
      EXPECT_EQ(l.q == nullptr, c.fused_projections);
      EXPECT_EQ(l.q_bias != nullptr, c.qkv_bias);
      EXPECT_EQ(l.q_norm != nullptr, c.qk_norm);
      EXPECT_EQ(l.pre_ffn_norm != nullptr, c.sandwich_norms);
      EXPECT_EQ(l.post_ffn_norm != nullptr, c.sandwich_norms);
      if (l.qkv)
        EXPECT_EQ(l.qkv->shape, (std::vector<int64_t>{c.q_dim() + 2 * c.kv_dim(), c.hidden_size}));
      if (l.gate_up)
        EXPECT_EQ(l.gate_up->shape, (std::vector<int64_t>{2 * c.intermediate_size, c.hidden_size}));
      if (l.q_norm) EXPECT_EQ(l.q_norm->shape, (std::vector<int64_t>{c.head_dim}));
      if (l.q_bias) EXPECT_EQ(l.q_bias->shape, (std::vector<int64_t>{c.q_dim()}));
    }
  }
}

// The fixture's tensors less one: the error names the missing tensor.
TEST(ModelWeightsFamiliesTest, AMissingTensorOfARoleIsNamed) {
  for (const auto& [name, missing] : std::vector<std::pair<std::string, std::string>>{
           {"qwen2", "model.layers.1.self_attn.k_proj.bias"},
           {"qwen3", "model.layers.0.self_attn.q_norm.weight"},
           {"gemma2", "model.layers.1.post_feedforward_layernorm.weight"},
           {"phi3", "model.layers.0.mlp.gate_up_proj.weight"}}) {
    SCOPED_TRACE(name);
    Loaded f = open_fixture(name);
    ASSERT_NE(f.store, nullptr);
    std::vector<testing::TestTensor> kept;
    for (const auto& [tname, view] : f.store->tensors()) {
      if (tname == missing) continue;
      ASSERT_EQ(view.dtype, DType::kBF16);
      std::vector<float> values = to_float32(view);
      kept.push_back({tname, "BF16", view.shape, std::move(values)});
    }
    auto store = TensorStore::from_bytes(testing::make_safetensors(kept), "partial");
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto w = find_model_weights(**store, f.cfg);
    ASSERT_FALSE(w.ok());
    EXPECT_NE(w.status().message().find(missing), std::string::npos) << w.status().message();
  }
}

}  // namespace
}  // namespace quilt::engine
