// The real tokenizers of five families (tests/data/real-tokenizers/) through the HTTP API: every
// raw case's `prompt_token_ids` from /v1/completions and every chat case's from
// /v1/chat/completions equal Hugging Face's ids. The model behind each tokenizer is a one-layer
// Llama with zero weights, written here: only the prompt side is under test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/engine/safetensors_writer.h"
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

struct Family {
  std::string name;
  int64_t vocab_size;  // the tokenizer's whole id space (config.json of the HF fixture)
  int64_t bos;
  std::vector<int64_t> eos;
};

const Family kFamilies[] = {
    {"llama3_1", 128256, 128000, {128001, 128008, 128009}},
    {"qwen3", 151680, 151643, {151645, 151643}},
    {"mistral_v01", 32000, 1, {2}},
    {"gemma3", 262208, 2, {1, 106}},
    {"deepseek_v3", 128832, 0, {1}},
};

const std::filesystem::path kTokenizers = QUILT_SOURCE_DIR "/tests/data/real-tokenizers";

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// A one-layer Llama with zero weights over `family`'s tokenizer files, in `dir`.
void write_model(const Family& family, const std::filesystem::path& dir) {
  constexpr int64_t kHidden = 8;
  std::filesystem::create_directories(dir);
  const json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                       {"vocab_size", family.vocab_size}, {"hidden_size", kHidden},
                       {"intermediate_size", 16}, {"num_hidden_layers", 1},
                       {"num_attention_heads", 1}, {"num_key_value_heads", 1},
                       {"head_dim", kHidden}, {"max_position_embeddings", 4096},
                       {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
                       {"tie_word_embeddings", true}, {"torch_dtype", "bfloat16"},
                       {"bos_token_id", family.bos}, {"eos_token_id", family.eos}};
  std::ofstream(dir / "config.json") << config.dump(2);
  auto zeros = [](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return std::vector<float>(static_cast<size_t>(n), 0.f);
  };
  auto tensor = [&](std::string name, std::vector<int64_t> shape) {
    return TestTensor{std::move(name), "BF16", shape, zeros(shape)};
  };
  const std::string l = "model.layers.0.";
  const std::vector<TestTensor> tensors = {
      tensor("model.embed_tokens.weight", {family.vocab_size, kHidden}),
      tensor("model.norm.weight", {kHidden}),
      tensor(l + "input_layernorm.weight", {kHidden}),
      tensor(l + "post_attention_layernorm.weight", {kHidden}),
      tensor(l + "self_attn.q_proj.weight", {kHidden, kHidden}),
      tensor(l + "self_attn.k_proj.weight", {kHidden, kHidden}),
      tensor(l + "self_attn.v_proj.weight", {kHidden, kHidden}),
      tensor(l + "self_attn.o_proj.weight", {kHidden, kHidden}),
      tensor(l + "mlp.gate_proj.weight", {16, kHidden}),
      tensor(l + "mlp.up_proj.weight", {16, kHidden}),
      tensor(l + "mlp.down_proj.weight", {kHidden, 16}),
  };
  std::ofstream(dir / "model.safetensors", std::ios::binary) << make_safetensors(tensors);
  for (const auto& entry : std::filesystem::directory_iterator(kTokenizers / family.name)) {
    const std::string file = entry.path().filename().string();
    if (file.starts_with("tokenizer") || file == "chat_template.jinja") {
      std::filesystem::copy_file(entry.path(), dir / file);
    }
  }
}

class RealTokenizersApiTest : public ServerTest, public ::testing::WithParamInterface<Family> {
 protected:
  void configure(app::ServerConfig& c) override {
    const auto model = dir_ / "model";
    if (!std::filesystem::exists(model)) write_model(GetParam(), model);
    c.model = model;
  }
  json cases() const { return read_json(kTokenizers / GetParam().name / "cases.json"); }
};

TEST_P(RealTokenizersApiTest, CompletionsReturnHuggingFacePromptIds) {
  const auto [tenant, key] = make_tenant("t");
  const json c = cases();
  ASSERT_GE(c["raw"].size(), 30u);
  int exact = 0;
  for (const auto& raw : c["raw"]) {
    const auto want = raw["ids"].get<std::vector<int32_t>>();
    const json body = {{"model", server_->model_id()}, {"prompt", raw["text"]},
                       {"max_tokens", 1}, {"temperature", 0}, {"return_token_ids", true}};
    const HttpResponse r = call("POST", "/v1/completions", key, body.dump());
    if (want.empty()) {  // no BOS and no text: nothing to complete from
      EXPECT_EQ(r.status, 400) << raw["name"] << ": " << r.body;
      exact += r.status == 400;
      continue;
    }
    ASSERT_EQ(r.status, 200) << raw["name"] << ": " << r.body;
    const json out = json::parse(r.body);
    const auto got = out["prompt_token_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(got, want) << raw["name"];
    EXPECT_EQ(out["usage"]["prompt_tokens"].get<size_t>(), want.size()) << raw["name"];
    exact += got == want;
  }
  RecordProperty("exact", exact);
  EXPECT_EQ(exact, static_cast<int>(c["raw"].size()));
}

TEST_P(RealTokenizersApiTest, ChatCompletionsReturnHuggingFacePromptIds) {
  const auto [tenant, key] = make_tenant("t");
  const json c = cases();
  ASSERT_GE(c["chats"].size(), 3u);
  for (const auto& chat : c["chats"]) {
    ASSERT_TRUE(chat["add_generation_prompt"].get<bool>()) << "the API always adds it";
    const json body = {{"model", server_->model_id()}, {"messages", chat["messages"]},
                       {"max_tokens", 1}, {"temperature", 0}, {"return_token_ids", true}};
    const HttpResponse r = call("POST", "/v1/chat/completions", key, body.dump());
    ASSERT_EQ(r.status, 200) << chat["name"] << ": " << r.body;
    const json out = json::parse(r.body);
    EXPECT_EQ(out["prompt_token_ids"].get<std::vector<int32_t>>(),
              chat["ids"].get<std::vector<int32_t>>())
        << chat["name"] << "\nrendered by HF:\n" << chat["rendered"].get<std::string>();
  }
}

INSTANTIATE_TEST_SUITE_P(Families, RealTokenizersApiTest, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace quilt::testing
