// Tests of finding a Llama model's tensors by role, on the fixture and on synthetic stores.
#include "engine/model/model_weights.h"

#include <gtest/gtest.h>

#include "engine/model/lora_weights.h"
#include "tests/engine/safetensors_writer.h"

namespace quilt::engine {
namespace {

using testing::TestTensor;

const std::filesystem::path kTinyLlama =
    std::filesystem::path(QUILT_SOURCE_DIR) / "examples/models/tiny-llama";

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(ModelWeightsTest, FixtureFindsEveryTensor) {
  auto cfg = load_model_config(kTinyLlama);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto store = TensorStore::open_dir(kTinyLlama);
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto w = find_model_weights(**store, *cfg);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->embed->name, "model.embed_tokens.weight");
  EXPECT_EQ(w->final_norm->name, "model.norm.weight");
  EXPECT_EQ(w->lm_head->name, "lm_head.weight");  // not tied in this fixture
  ASSERT_EQ(w->layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const LayerWeightViews& l = w->layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    EXPECT_EQ(l.input_norm->name, p + "input_layernorm.weight");
    EXPECT_EQ(l.post_norm->name, p + "post_attention_layernorm.weight");
    EXPECT_EQ(l.q->name, p + "self_attn.q_proj.weight");
    EXPECT_EQ(l.k->name, p + "self_attn.k_proj.weight");
    EXPECT_EQ(l.v->name, p + "self_attn.v_proj.weight");
    EXPECT_EQ(l.o->name, p + "self_attn.o_proj.weight");
    EXPECT_EQ(l.gate->name, p + "mlp.gate_proj.weight");
    EXPECT_EQ(l.up->name, p + "mlp.up_proj.weight");
    EXPECT_EQ(l.down->name, p + "mlp.down_proj.weight");
    EXPECT_EQ(l.k->shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(l.down->shape, (std::vector<int64_t>{64, 176}));
  }
}

// A tiny GQA model whose q_dim (2 heads x 6) differs from hidden (8).
ModelConfig tiny_config() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 16;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 6;
  c.max_position_embeddings = 32;
  return c;
}

std::vector<TestTensor> tiny_tensors(const ModelConfig& c, bool with_lm_head) {
  const auto t = [](std::string name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return TestTensor{std::move(name), "BF16", shape, testing::ramp(static_cast<size_t>(n))};
  };
  std::vector<TestTensor> out = {t("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}),
                                 t("model.norm.weight", {c.hidden_size})};
  if (with_lm_head) out.push_back(t("lm_head.weight", {c.vocab_size, c.hidden_size}));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (int j = 0; j < kNumProjections; ++j) {
      const auto proj = static_cast<Projection>(j);
      const std::string group = j <= static_cast<int>(Projection::kO) ? "self_attn." : "mlp.";
      out.push_back(t(p + group + projection_name(proj) + ".weight",
                      {projection_out_dim(c, proj), projection_in_dim(c, proj)}));
    }
    out.push_back(t(p + "input_layernorm.weight", {c.hidden_size}));
    out.push_back(t(p + "post_attention_layernorm.weight", {c.hidden_size}));
  }
  return out;
}

Result<std::unique_ptr<TensorStore>> store_of(const std::vector<TestTensor>& tensors) {
  return TensorStore::from_bytes(testing::make_safetensors(tensors), "synthetic.safetensors");
}

TEST(ModelWeightsTest, SyntheticGqaModelWithDistinctHeadDim) {
  const ModelConfig c = tiny_config();
  auto store = store_of(tiny_tensors(c, true));
  ASSERT_TRUE(store.ok());
  auto w = find_model_weights(**store, c);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->layers[1].q->shape, (std::vector<int64_t>{12, 8}));
  EXPECT_EQ(w->layers[1].k->shape, (std::vector<int64_t>{6, 8}));
  EXPECT_EQ(w->layers[1].o->shape, (std::vector<int64_t>{8, 12}));
  EXPECT_NE(w->lm_head, w->embed);
}

TEST(ModelWeightsTest, TiedEmbeddingsServeAsLmHead) {
  ModelConfig c = tiny_config();
  auto store = store_of(tiny_tensors(c, false));
  ASSERT_TRUE(store.ok());

  Status s = find_model_weights(**store, c).status();  // untied: lm_head.weight is required
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "lm_head.weight")) << s.message();

  c.tie_word_embeddings = true;
  auto w = find_model_weights(**store, c);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->lm_head, w->embed);
}

TEST(ModelWeightsTest, WrongShapeNamesTheTensor) {
  const ModelConfig c = tiny_config();
  auto tensors = tiny_tensors(c, true);
  for (auto& t : tensors) {
    if (t.name == "model.layers.1.self_attn.k_proj.weight") t.shape = {3, 16};  // same size
  }
  auto store = store_of(tensors);
  ASSERT_TRUE(store.ok());
  Status s = find_model_weights(**store, c).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "model.layers.1.self_attn.k_proj.weight")) << s.message();
  EXPECT_TRUE(contains(s.message(), "[3, 16]")) << s.message();
  EXPECT_TRUE(contains(s.message(), "[6, 8]")) << s.message();
  EXPECT_TRUE(contains(s.message(), "synthetic.safetensors")) << s.message();
}

TEST(ModelWeightsTest, MissingTensorIsNamed) {
  const ModelConfig c = tiny_config();
  auto tensors = tiny_tensors(c, true);
  std::erase_if(tensors, [](const TestTensor& t) {
    return t.name == "model.layers.0.post_attention_layernorm.weight";
  });
  auto store = store_of(tensors);
  ASSERT_TRUE(store.ok());
  Status s = find_model_weights(**store, c).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "model.layers.0.post_attention_layernorm.weight"))
      << s.message();
}

TEST(LoraWeightsTest, ProjectionShapes) {
  const ModelConfig c = tiny_config();
  EXPECT_STREQ(projection_name(Projection::kGate), "gate_proj");
  EXPECT_EQ(projection_in_dim(c, Projection::kQ), 8);
  EXPECT_EQ(projection_out_dim(c, Projection::kQ), 12);
  EXPECT_EQ(projection_out_dim(c, Projection::kV), 6);
  EXPECT_EQ(projection_in_dim(c, Projection::kO), 12);
  EXPECT_EQ(projection_out_dim(c, Projection::kO), 8);
  EXPECT_EQ(projection_out_dim(c, Projection::kUp), 12);
  EXPECT_EQ(projection_in_dim(c, Projection::kDown), 12);
  EXPECT_EQ(projection_out_dim(c, Projection::kDown), 8);

  LoraWeights w;
  w.layers.resize(2);
  w.layers[0][0] = {4, 1.f, std::vector<float>(4 * 8), std::vector<float>(4 * 12)};
  w.layers[1][6] = {16, 1.f, std::vector<float>(16 * 12), std::vector<float>(16 * 8)};
  EXPECT_EQ(w.max_rank(), 16);
  EXPECT_EQ(w.num_parameters(), 4 * 20 + 16 * 20);
}

}  // namespace
}  // namespace quilt::engine
