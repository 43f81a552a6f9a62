// Tests of config.json / generation_config.json parsing for Llama and Mistral models (the other
// families: model_config_families_test.cc).
#include "engine/model/model_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/engine/safetensors_writer.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

const std::filesystem::path kTinyLlama =
    std::filesystem::path(QUILT_SOURCE_DIR) / "examples/models/tiny-llama";

// A minimal valid Llama config, as recent transformers versions write it.
json base_config() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", 128256},
              {"hidden_size", 4096},
              {"intermediate_size", 14336},
              {"num_hidden_layers", 32},
              {"num_attention_heads", 32},
              {"num_key_value_heads", 8},
              {"max_position_embeddings", 131072},
              {"rms_norm_eps", 1e-5},
              {"hidden_act", "silu"},
              {"attention_bias", false},
              {"mlp_bias", false},
              {"tie_word_embeddings", false},
              {"rope_theta", 500000.0},
              {"rope_scaling", nullptr},
              {"bos_token_id", 128000},
              {"eos_token_id", 128001},
              {"torch_dtype", "bfloat16"}};
}

Result<ModelConfig> parse(const json& j) {
  return parse_model_config(j.dump(), "test/config.json");
}

// The error of parsing `j`, which must fail.
Status parse_error(const json& j) {
  auto r = parse(j);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Status::OK() : r.status();
}

TEST(ModelConfigTest, FixtureMatchesItsConfigJson) {
  auto r = load_model_config(kTinyLlama);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 176);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.rope.type, RopeScalingType::kDefault);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{4});
}

TEST(ModelConfigTest, RopeParametersForm) {
  json j = base_config();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  auto r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->rope.theta, 250000.0);
  EXPECT_EQ(r->rope.type, RopeScalingType::kDefault);
  EXPECT_EQ(r->torch_dtype, "float16");

  j["rope_parameters"] = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                          {"factor", 32.0},          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(r->rope.factor, 32.0);
  EXPECT_DOUBLE_EQ(r->rope.theta, 500000.0);
}

TEST(ModelConfigTest, Llama3RopeScaling) {
  json j = base_config();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(r->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(r->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(r->rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(r->rope.high_freq_factor, 4.0);
  EXPECT_EQ(r->rope.original_max_position_embeddings, 8192);

  // llama3 needs all of its parameters, as transformers' validation does.
  j["rope_scaling"].erase("low_freq_factor");
  Status s = parse_error(j);
  EXPECT_NE(s.message().find("rope_scaling.low_freq_factor"), std::string::npos) << s.message();
}

TEST(ModelConfigTest, LinearRopeScalingWithOldTypeKey) {
  json j = base_config();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  auto r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->rope.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(r->rope.factor, 4.0);
}

TEST(ModelConfigTest, UnsupportedRopeTypeNamesTheField) {
  json j = base_config();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  Status s = parse_error(j);
  EXPECT_TRUE(s.IsUnimplemented());
  EXPECT_NE(s.message().find("rope_scaling.rope_type"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("yarn"), std::string::npos) << s.message();

  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  s = parse_error(j);
  EXPECT_NE(s.message().find("rope_scaling.type"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("dynamic"), std::string::npos) << s.message();

  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"factor", 4.0}};
  s = parse_error(j);
  EXPECT_NE(s.message().find("rope_parameters.rope_type"), std::string::npos) << s.message();
}

TEST(ModelConfigTest, MistralSlidingWindowIsAMaskNotAContextCap) {
  // Mistral 7B v0.1: a 4096-token sliding window in every layer, over a 32K context.
  json j = {{"architectures", {"MistralForCausalLM"}},
            {"vocab_size", 32000},
            {"hidden_size", 4096},
            {"intermediate_size", 14336},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 8},
            {"max_position_embeddings", 32768},
            {"sliding_window", 4096},
            {"rms_norm_eps", 1e-5},
            {"hidden_act", "silu"},
            {"rope_theta", 10000.0},
            {"tie_word_embeddings", false},
            {"bos_token_id", 1},
            {"eos_token_id", 2},
            {"torch_dtype", "bfloat16"}};
  auto r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->architecture, "MistralForCausalLM");
  EXPECT_EQ(r->head_dim, 128);
  EXPECT_EQ(r->kv_dim(), 1024);
  EXPECT_EQ(r->max_position_embeddings, 32768);
  EXPECT_EQ(r->sliding_window, 4096);
  for (int64_t i = 0; i < 32; ++i) EXPECT_TRUE(r->is_sliding(i)) << i;
  EXPECT_EQ(r->bos_token_id, 1);
  EXPECT_EQ(r->eos_token_ids, std::vector<int64_t>{2});

  // v0.3: null means no window, the full context.
  j["sliding_window"] = nullptr;
  j["rope_theta"] = 1000000.0;
  r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->max_position_embeddings, 32768);
  EXPECT_EQ(r->sliding_window, 0);
  EXPECT_FALSE(r->is_sliding(0));
  EXPECT_DOUBLE_EQ(r->rope.theta, 1000000.0);

  // Absent: MistralConfig's default window, 4096.
  j.erase("sliding_window");
  r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->sliding_window, 4096);
}

TEST(ModelConfigTest, GqaAndHeadDim) {
  json j = base_config();
  auto r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->num_heads, 32);
  EXPECT_EQ(r->num_kv_heads, 8);
  EXPECT_EQ(r->head_dim, 128);  // hidden / heads

  // An explicit head_dim that is not hidden / heads: q_dim differs from hidden_size.
  j["hidden_size"] = 2048;
  j["num_attention_heads"] = 8;
  j["num_key_value_heads"] = 2;
  j["head_dim"] = 128;
  r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->head_dim, 128);
  EXPECT_EQ(r->q_dim(), 1024);
  EXPECT_EQ(r->kv_dim(), 256);

  // Without num_key_value_heads: multi-head attention.
  j.erase("num_key_value_heads");
  r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->num_kv_heads, 8);

  j["num_key_value_heads"] = 3;
  Status s = parse_error(j);
  EXPECT_NE(s.message().find("num_key_value_heads"), std::string::npos) << s.message();
}

TEST(ModelConfigTest, UnsupportedArchitectureNamesFileAndArchitecture) {
  json j = base_config();
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  Status s = parse_error(j);
  EXPECT_TRUE(s.IsUnimplemented());
  EXPECT_NE(s.message().find("test/config.json"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("architectures"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("DeepseekV3ForCausalLM"), std::string::npos) << s.message();

  // The multimodal Gemma 3 checkpoints say why.
  j["architectures"] = {"Gemma3ForConditionalGeneration"};
  s = parse_error(j);
  EXPECT_NE(s.message().find("Gemma3ForCausalLM"), std::string::npos) << s.message();

  j.erase("architectures");
  j["model_type"] = "mamba";
  s = parse_error(j);
  EXPECT_NE(s.message().find("model_type"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("mamba"), std::string::npos) << s.message();
}

TEST(ModelConfigTest, UnsupportedFeaturesAreErrorsNamingTheField) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"attention_bias", true}, {"mlp_bias", true}, {"hidden_act", "gelu"},
           {"partial_rotary_factor", 0.75}}) {
    json j = base_config();
    j[key] = value;
    Status s = parse_error(j);
    EXPECT_NE(s.message().find(key), std::string::npos) << s.message();
  }
}

TEST(ModelConfigTest, InvalidValuesNameTheField) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"hidden_size", -1},      {"hidden_size", "4096"}, {"num_hidden_layers", 0},
      {"vocab_size", 1.5},      {"rms_norm_eps", "x"},   {"tie_word_embeddings", 1},
      {"eos_token_id", "</s>"}, {"rope_scaling", 3}};
  for (const auto& [key, value] : cases) {
    json j = base_config();
    j[key] = value;
    Status s = parse_error(j);
    EXPECT_TRUE(s.IsInvalidArgument()) << key << ": " << s.message();
    EXPECT_NE(s.message().find(key), std::string::npos) << s.message();
  }
  json j = base_config();
  j.erase("intermediate_size");
  Status s = parse_error(j);
  EXPECT_NE(s.message().find("intermediate_size"), std::string::npos) << s.message();

  EXPECT_FALSE(parse_model_config("{not json", "x.json").ok());
  EXPECT_FALSE(parse_model_config("[1, 2]", "x.json").ok());
  EXPECT_TRUE(load_model_config("/nonexistent/quilt/model").status().IsNotFound());
}

TEST(ModelConfigTest, EosListFromConfigAndGenerationConfigOverride) {
  json j = base_config();
  j["eos_token_id"] = {128001, 128009};
  auto r = parse(j);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{128001, 128009}));

  // generation_config.json overrides config.json's bos/eos.
  testing::ScratchDir dir;
  dir.write("config.json", base_config().dump());
  dir.write("generation_config.json",
            json{{"bos_token_id", 128000}, {"eos_token_id", {128001, 128008, 128009}}}.dump());
  r = load_model_config(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->bos_token_id, 128000);
  EXPECT_EQ(r->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));

  dir.write("generation_config.json", R"({"eos_token_id": "oops"})");
  Status s = load_model_config(dir.path()).status();
  EXPECT_NE(s.message().find("generation_config.json"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("eos_token_id"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace quilt::engine
