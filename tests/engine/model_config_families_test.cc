// config.json of the Qwen, Mistral, Gemma and Phi-3 families: real 7B-9B and 27B-123B shapes
// parse with what each architecture needs, both config layouts (rope_theta / rope_scaling and
// transformers 5's rope_parameters / layer_types) give the same model, and what the forward pass
// cannot compute is refused naming the file, the field and the value.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/model/model_config.h"
#include "engine/model/rope.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

Result<ModelConfig> parse(const json& j) { return parse_model_config(j.dump(), "m/config.json"); }

ModelConfig parse_ok(const json& j) {
  auto r = parse(j);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : ModelConfig{};
}

Status parse_error(const json& j) {
  auto r = parse(j);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Status::OK() : r.status();
}

// Every part must appear in s.
void expect_mentions(const Status& s, std::initializer_list<std::string> parts) {
  for (const std::string& p : parts) {
    EXPECT_NE(s.message().find(p), std::string::npos) << "'" << p << "' not in: " << s.message();
  }
}

json qwen25_7b() {
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"model_type", "qwen2"},
          {"hidden_size", 3584},
          {"intermediate_size", 18944},
          {"num_hidden_layers", 28},
          {"num_attention_heads", 28},
          {"num_key_value_heads", 4},
          {"vocab_size", 152064},
          {"max_position_embeddings", 32768},
          {"max_window_layers", 28},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 1000000.0},
          {"sliding_window", 131072},
          {"use_sliding_window", false},
          {"tie_word_embeddings", false},
          {"hidden_act", "silu"},
          {"bos_token_id", 151643},
          {"eos_token_id", 151645},
          {"torch_dtype", "bfloat16"}};
}

TEST(ModelConfigFamiliesTest, Qwen25At7BAnd72B) {
  ModelConfig c = parse_ok(qwen25_7b());
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.kv_dim(), 512);
  // use_sliding_window false: transformers drops the window, so every layer is full attention.
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_FALSE(c.is_sliding(27));
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.activation, Activation::kSilu);

  json j = qwen25_7b();
  j["hidden_size"] = 8192;
  j["intermediate_size"] = 29568;
  j["num_hidden_layers"] = 80;
  j["num_attention_heads"] = 64;
  j["num_key_value_heads"] = 8;
  c = parse_ok(j);
  EXPECT_EQ(c.num_layers, 80);
  EXPECT_EQ(c.q_dim(), 8192);
  EXPECT_EQ(c.kv_dim(), 1024);

  // With use_sliding_window, layers from max_window_layers on slide.
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 70;
  j["sliding_window"] = 4096;
  c = parse_ok(j);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.is_sliding(69));
  EXPECT_TRUE(c.is_sliding(70));
}

TEST(ModelConfigFamiliesTest, Qwen3At8BAnd32BInBothLayouts) {
  json j = {{"architectures", {"Qwen3ForCausalLM"}},
            {"hidden_size", 4096},
            {"intermediate_size", 12288},
            {"num_hidden_layers", 36},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 8},
            {"head_dim", 128},
            {"vocab_size", 151936},
            {"max_position_embeddings", 40960},
            {"rope_theta", 1000000.0},
            {"rope_scaling", nullptr},
            {"attention_bias", false},
            {"tie_word_embeddings", false},
            {"use_sliding_window", false},
            {"torch_dtype", "bfloat16"}};
  ModelConfig c = parse_ok(j);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 128);

  // 32B: head_dim 128 with hidden 5120 / 64 heads = 80.
  j["hidden_size"] = 5120;
  j["intermediate_size"] = 25600;
  j["num_hidden_layers"] = 64;
  j["num_attention_heads"] = 64;
  c = parse_ok(j);
  EXPECT_EQ(c.q_dim(), 8192);
  EXPECT_NE(c.q_dim(), c.hidden_size);

  // transformers 5 writes rope_parameters, layer_types and dtype.
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  j["layer_types"] = json::array();
  for (int i = 0; i < 64; ++i) j["layer_types"].push_back("full_attention");
  ModelConfig v5 = parse_ok(j);
  EXPECT_DOUBLE_EQ(v5.rope.theta, 1e6);
  EXPECT_EQ(v5.sliding_window, 0);

  // A Qwen3 with attention_bias would need an o_proj bias too.
  j["attention_bias"] = true;
  expect_mentions(parse_error(j), {"m/config.json", "attention_bias", "true"});
}

TEST(ModelConfigFamiliesTest, MistralNemoAndLarge) {
  json j = {{"architectures", {"MistralForCausalLM"}},
            {"hidden_size", 5120},
            {"intermediate_size", 14336},
            {"num_hidden_layers", 40},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 8},
            {"head_dim", 128},
            {"vocab_size", 131072},
            {"max_position_embeddings", 1024000},
            {"rope_theta", 1000000.0},
            {"sliding_window", nullptr},
            {"rms_norm_eps", 1e-5},
            {"torch_dtype", "bfloat16"}};
  ModelConfig c = parse_ok(j);
  EXPECT_EQ(c.head_dim, 128);  // not 5120 / 32 = 160
  EXPECT_EQ(c.q_dim(), 4096);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.max_position_embeddings, 1024000);

  // Mistral Large 2 (123B).
  j["hidden_size"] = 12288;
  j["intermediate_size"] = 28672;
  j["num_hidden_layers"] = 88;
  j["num_attention_heads"] = 96;
  j.erase("head_dim");
  c = parse_ok(j);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_layers, 88);
}

json gemma2_9b() {
  return {{"architectures", {"Gemma2ForCausalLM"}},
          {"model_type", "gemma2"},
          {"hidden_size", 3584},
          {"intermediate_size", 14336},
          {"num_hidden_layers", 42},
          {"num_attention_heads", 16},
          {"num_key_value_heads", 8},
          {"head_dim", 256},
          {"vocab_size", 256000},
          {"max_position_embeddings", 8192},
          {"hidden_act", "gelu_pytorch_tanh"},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"query_pre_attn_scalar", 256},
          {"sliding_window", 4096},
          {"final_logit_softcapping", 30.0},
          {"attn_logit_softcapping", 50.0},
          {"rope_theta", 10000.0},
          {"rms_norm_eps", 1e-6},
          {"cache_implementation", "hybrid"},
          {"torch_dtype", "float32"}};
}

TEST(ModelConfigFamiliesTest, Gemma2At9BAnd27B) {
  ModelConfig c = parse_ok(gemma2_9b());
  EXPECT_EQ(c.activation, Activation::kGeluTanh);
  EXPECT_TRUE(c.norm_weight_offset);
  EXPECT_TRUE(c.sandwich_norms);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_TRUE(c.tie_word_embeddings);  // Gemma's default
  EXPECT_FLOAT_EQ(c.embedding_scale, std::sqrt(3584.0f));
  EXPECT_DOUBLE_EQ(c.query_pre_attn_scalar, 256);
  EXPECT_DOUBLE_EQ(c.attn_logit_softcap, 50);
  EXPECT_DOUBLE_EQ(c.final_logit_softcap, 30);
  EXPECT_EQ(c.sliding_window, 4096);
  for (int i = 0; i < 42; ++i) EXPECT_EQ(c.is_sliding(i), i % 2 == 0) << i;  // even layers slide
  EXPECT_FALSE(c.has_local_rope);

  json j = gemma2_9b();
  j["hidden_size"] = 4608;
  j["intermediate_size"] = 36864;
  j["num_hidden_layers"] = 46;
  j["num_attention_heads"] = 32;
  j["num_key_value_heads"] = 16;
  j["head_dim"] = 128;
  j["query_pre_attn_scalar"] = 144;
  c = parse_ok(j);
  EXPECT_DOUBLE_EQ(c.query_pre_attn_scalar, 144);
  EXPECT_EQ(c.q_dim(), 4096);

  // Absent soft-capping keys take Gemma2Config's defaults; null turns them off.
  j.erase("final_logit_softcapping");
  j["attn_logit_softcapping"] = nullptr;
  c = parse_ok(j);
  EXPECT_DOUBLE_EQ(c.final_logit_softcap, 30);
  EXPECT_DOUBLE_EQ(c.attn_logit_softcap, 0);

  j["hidden_activation"] = "gelu";  // exact erf GELU: not what the kernels compute
  expect_mentions(parse_error(j), {"m/config.json", "hidden_activation", "gelu"});
}

json gemma3_1b() {
  return {{"architectures", {"Gemma3ForCausalLM"}},
          {"model_type", "gemma3_text"},
          {"hidden_size", 1152},
          {"intermediate_size", 6912},
          {"num_hidden_layers", 26},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 1},
          {"head_dim", 256},
          {"vocab_size", 262144},
          {"max_position_embeddings", 32768},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"query_pre_attn_scalar", 256},
          {"rope_theta", 1000000.0},
          {"rope_local_base_freq", 10000.0},
          {"rope_scaling", nullptr},
          {"sliding_window", 512},
          {"sliding_window_pattern", 6},
          {"final_logit_softcapping", nullptr},
          {"attn_logit_softcapping", nullptr},
          {"torch_dtype", "bfloat16"}};
}

TEST(ModelConfigFamiliesTest, Gemma3At1BAnd27BInBothLayouts) {
  ModelConfig c = parse_ok(gemma3_1b());
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.norm_weight_offset);
  EXPECT_TRUE(c.has_local_rope);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_DOUBLE_EQ(c.local_rope.theta, 1e4);
  EXPECT_DOUBLE_EQ(c.final_logit_softcap, 0);
  // Every sixth layer is global, the others slide over 512 positions with the local base.
  for (int i = 0; i < 26; ++i) {
    EXPECT_EQ(c.is_sliding(i), (i + 1) % 6 != 0) << i;
    EXPECT_DOUBLE_EQ(c.rope_for_layer(i).theta, (i + 1) % 6 != 0 ? 1e4 : 1e6) << i;
  }

  // 27B's text model: linear RoPE scaling on the global layers only.
  json j = gemma3_1b();
  j["hidden_size"] = 5376;
  j["intermediate_size"] = 21504;
  j["num_hidden_layers"] = 62;
  j["num_attention_heads"] = 32;
  j["num_key_value_heads"] = 16;
  j["head_dim"] = 128;
  j["query_pre_attn_scalar"] = 168;
  j["sliding_window"] = 1024;
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  c = parse_ok(j);
  EXPECT_EQ(c.rope.type, RopeScalingType::kLinear);
  EXPECT_EQ(c.local_rope.type, RopeScalingType::kDefault);
  const RopeTable global = make_rope_table(c, c.rope), local = make_rope_table(c, c.local_rope);
  EXPECT_FLOAT_EQ(global.inv_freq[1], static_cast<float>(std::pow(1e6, -2.0 / 128) / 8));
  EXPECT_FLOAT_EQ(local.inv_freq[1], static_cast<float>(std::pow(1e4, -2.0 / 128)));

  // transformers 5's layout of the same model: rope_parameters per layer type and layer_types.
  json v5 = j;
  v5.erase("rope_theta");
  v5.erase("rope_local_base_freq");
  v5.erase("rope_scaling");
  v5.erase("sliding_window_pattern");
  v5["rope_parameters"] = {
      {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1000000.0}}},
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  v5["layer_types"] = json::array();
  for (int i = 0; i < 62; ++i) {
    v5["layer_types"].push_back((i + 1) % 6 != 0 ? "sliding_attention" : "full_attention");
  }
  const ModelConfig n = parse_ok(v5);
  EXPECT_EQ(n.layer_sliding, c.layer_sliding);
  EXPECT_EQ(n.sliding_window, c.sliding_window);
  EXPECT_DOUBLE_EQ(n.rope.theta, c.rope.theta);
  EXPECT_DOUBLE_EQ(n.rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(n.local_rope.theta, c.local_rope.theta);

  v5["layer_types"][3] = "chunked_attention";
  expect_mentions(parse_error(v5), {"m/config.json", "layer_types", "chunked_attention"});
  v5["layer_types"].erase(3);
  expect_mentions(parse_error(v5), {"layer_types", "62"});
}

json phi3_mini_4k() {
  return {{"architectures", {"Phi3ForCausalLM"}},
          {"model_type", "phi3"},
          {"hidden_size", 3072},
          {"intermediate_size", 8192},
          {"num_hidden_layers", 32},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 32},
          {"vocab_size", 32064},
          {"max_position_embeddings", 4096},
          {"original_max_position_embeddings", 4096},
          {"rope_theta", 10000.0},
          {"rope_scaling", nullptr},
          {"sliding_window", 2047},
          {"rms_norm_eps", 1e-5},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

TEST(ModelConfigFamiliesTest, Phi3Mini4kAnd128kWithLongRope) {
  ModelConfig c = parse_ok(phi3_mini_4k());
  EXPECT_TRUE(c.fused_projections);
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_TRUE(c.is_sliding(31));
  EXPECT_EQ(c.rope.type, RopeScalingType::kDefault);

  // 128k: LongRoPE from the old "longrope" / "su" layout, factor from the context ratio.
  json j = phi3_mini_4k();
  j["max_position_embeddings"] = 131072;
  j["sliding_window"] = 262144;
  std::vector<double> short_f(48, 1.0), long_f(48, 2.0);
  short_f[47] = 1.5;
  j["rope_scaling"] = {{"type", "su"}, {"short_factor", short_f}, {"long_factor", long_f}};
  c = parse_ok(j);
  EXPECT_EQ(c.rope.type, RopeScalingType::kLongRope);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_NEAR(c.rope.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-12);
  const RopeTable t = make_rope_table(c);
  EXPECT_EQ(t.long_from_position, 4096);
  EXPECT_FLOAT_EQ(t.attention_scaling, static_cast<float>(c.rope.attention_factor));
  EXPECT_NEAR(t.inv_freq[47], 1 / (1.5 * std::pow(10000.0, 94.0 / 96)), 1e-9);
  EXPECT_NEAR(t.long_inv_freq[47], 1 / (2.0 * std::pow(10000.0, 94.0 / 96)), 1e-9);
  EXPECT_EQ(t.freqs_at(4095), t.inv_freq);
  EXPECT_EQ(t.freqs_at(4096), t.long_inv_freq);

  // An explicit attention_factor wins; Phi-3.5's medium shape parses too.
  j["rope_scaling"]["attention_factor"] = 1.25;
  j["hidden_size"] = 5120;
  j["num_attention_heads"] = 40;
  j["num_key_value_heads"] = 10;
  j["num_hidden_layers"] = 40;
  j["intermediate_size"] = 17920;
  j["rope_scaling"]["short_factor"] = std::vector<double>(64, 1.0);
  j["rope_scaling"]["long_factor"] = std::vector<double>(64, 4.0);
  c = parse_ok(j);
  EXPECT_DOUBLE_EQ(c.rope.attention_factor, 1.25);
  EXPECT_EQ(c.kv_dim(), 1280);

  // Factor lists must cover head_dim / 2.
  j["rope_scaling"]["long_factor"] = std::vector<double>(63, 4.0);
  expect_mentions(parse_error(j), {"m/config.json", "long_factor", "64"});
}

TEST(ModelConfigFamiliesTest, UnsupportedFeaturesNameFileFieldAndValue) {
  // Phi-4-mini rotates three quarters of each head.
  json j = phi3_mini_4k();
  j["partial_rotary_factor"] = 0.75;
  Status s = parse_error(j);
  EXPECT_TRUE(s.IsUnimplemented()) << s.message();
  expect_mentions(s, {"m/config.json", "partial_rotary_factor", "0.75"});

  j = qwen25_7b();
  j["rope_scaling"] = {
      {"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  expect_mentions(parse_error(j), {"m/config.json", "rope_scaling.type", "yarn"});

  j = qwen25_7b();
  j["hidden_act"] = "relu";
  expect_mentions(parse_error(j), {"m/config.json", "hidden_act", "relu"});

  j = gemma3_1b();
  j["use_bidirectional_attention"] = true;
  expect_mentions(parse_error(j), {"m/config.json", "use_bidirectional_attention", "true"});

  j = gemma3_1b();
  j["architectures"] = {"Gemma3ForConditionalGeneration"};
  expect_mentions(parse_error(j), {"m/config.json", "Gemma3ForConditionalGeneration"});

  // Per-layer-type RoPE is Gemma 3's: elsewhere it would be silently misread.
  j = qwen25_7b();
  j.erase("rope_theta");
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}}};
  expect_mentions(parse_error(j), {"m/config.json", "rope_parameters", "Qwen2ForCausalLM"});
}

TEST(ModelConfigFamiliesTest, SupportedArchitecturesListsEveryFamily) {
  const auto& names = supported_architectures();
  for (const char* a :
       {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
        "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), a), names.end()) << a;
  }
}

}  // namespace
}  // namespace quilt::engine
