// Tests of PEFT LoRA adapter loading: the fixture adapters, targeting rules, and every rejection.
#include "tests/adapters/fixture_model.h"
#include "adapters/peft_adapter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/engine/safetensors_writer.h"

namespace quilt::adapters {
namespace {

using engine::LoraWeights;
using engine::ModelConfig;
using engine::Projection;
using json = nlohmann::ordered_json;  // rank_pattern order matters
using testing::TestTensor;

using testing::kAdapters;
using testing::kSource;
using testing::tiny_llama;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

constexpr Projection kAll[] = {Projection::kQ,    Projection::kK,  Projection::kV,   Projection::kO,
                               Projection::kGate, Projection::kUp, Projection::kDown};

// Each targeted module's A and Bᵀ equal the file's lora_A and transposed lora_B, value for value.
void expect_matches_file(const std::string& adapter, const LoraWeights& w) {
  auto store = engine::TensorStore::open_file(kAdapters / adapter / "adapter_model.safetensors");
  ASSERT_TRUE(store.ok()) << store.status().message();
  int modules = 0;
  for (int64_t l = 0; l < tiny_llama().num_layers; ++l) {
    for (Projection p : kAll) {
      const auto& m = w.layers[l][static_cast<int>(p)];
      const std::string base = "base_model.model." + peft_module_name(l, p);
      const auto* a = (*store)->find(base + ".lora_A.weight");
      const auto* b = (*store)->find(base + ".lora_B.weight");
      ASSERT_EQ(a == nullptr, m.rank == 0) << base;
      if (m.rank == 0) continue;
      ++modules;
      const int64_t out = engine::projection_out_dim(tiny_llama(), p);
      EXPECT_EQ(m.a, engine::to_float32(*a)) << base;
      const std::vector<float> bv = engine::to_float32(*b);
      ASSERT_EQ(m.bt.size(), bv.size());
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t j = 0; j < m.rank; ++j) {
          ASSERT_EQ(m.bt[j * out + o], bv[o * m.rank + j]) << base << " o=" << o << " j=" << j;
        }
      }
    }
  }
  EXPECT_EQ(modules * 2, static_cast<int>((*store)->tensors().size()));
}

// The (rank, scale) of every projection of every layer: rank 0 where not targeted.
void expect_plan(const LoraWeights& w, std::initializer_list<Projection> targeted, int64_t rank,
                 float scale) {
  ASSERT_EQ(w.layers.size(), 2u);
  for (const auto& layer : w.layers) {
    for (Projection p : kAll) {
      const auto& m = layer[static_cast<int>(p)];
      const bool on = std::find(targeted.begin(), targeted.end(), p) != targeted.end();
      EXPECT_EQ(m.rank, on ? rank : 0) << engine::projection_name(p);
      if (on) {
        EXPECT_FLOAT_EQ(m.scale, scale) << engine::projection_name(p);
        EXPECT_EQ(m.a.size(),
                  static_cast<size_t>(rank * engine::projection_in_dim(tiny_llama(), p)));
        EXPECT_EQ(m.bt.size(),
                  static_cast<size_t>(rank * engine::projection_out_dim(tiny_llama(), p)));
      }
    }
  }
}

TEST(PeftFixtureTest, SupportBot) {
  auto w = load_peft_adapter_dir(kAdapters / "support-bot", tiny_llama());
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->name, "support-bot");
  expect_plan(**w, {Projection::kQ, Projection::kV}, 8, 16.0f / 8);
  EXPECT_EQ((*w)->max_rank(), 8);
  EXPECT_EQ((*w)->num_parameters(), 2 * (8 * (64 + 64) + 8 * (64 + 32)));
  expect_matches_file("support-bot", **w);
  // Values as Python reads them: layer 1 v_proj, A[0][0], A[7][63], B[0][0], B[0][1], B[1][0].
  const auto& v = (*w)->layers[1][static_cast<int>(Projection::kV)];
  EXPECT_EQ(v.a[0], 0.01683397777378559f);
  EXPECT_EQ(v.a[8 * 64 - 1], -0.020284146070480347f);
  EXPECT_EQ(v.bt[0], 0.058917928487062454f);
  EXPECT_EQ(v.bt[1 * 32 + 0], -0.9323828220367432f);  // Bᵀ[1][0] = B[0][1]
  EXPECT_EQ(v.bt[0 * 32 + 1], 0.34960687160491943f);  // Bᵀ[0][1] = B[1][0]
  EXPECT_EQ(v.bt[7 * 32 + 31], 0.2774133086204529f);  // Bᵀ[7][31] = B[31][7]
}

TEST(PeftFixtureTest, SqlWriterBf16AllProjections) {
  auto w = load_peft_adapter_dir(kAdapters / "sql-writer/", tiny_llama());  // trailing slash
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->name, "sql-writer");
  expect_plan(**w,
              {Projection::kQ, Projection::kK, Projection::kV, Projection::kO, Projection::kGate,
               Projection::kUp, Projection::kDown},
              16, 2.0f);
  expect_matches_file("sql-writer", **w);
  const auto& q = (*w)->layers[0][static_cast<int>(Projection::kQ)];
  EXPECT_EQ(q.a[0], -0.1787109375f);  // bf16 0xbe37
  EXPECT_EQ(q.a[1], 0.154296875f);
  EXPECT_EQ(q.a[64 * 15 + 63], -0.10791015625f);
  EXPECT_EQ(q.bt[0], -0.177734375f);                // B[0][0]
  EXPECT_EQ(q.bt[1 * 64 + 0], -0.2421875f);         // B[0][1]
  EXPECT_EQ(q.bt[0 * 64 + 1], 0.054443359375f);     // B[1][0]
  EXPECT_EQ(q.bt[15 * 64 + 63], 0.0245361328125f);  // B[63][15]
}

TEST(PeftFixtureTest, LegalRsRsLora) {
  auto w = load_peft_adapter_dir(kAdapters / "legal-rs", tiny_llama());
  ASSERT_TRUE(w.ok()) << w.status().message();
  expect_plan(**w,
              {Projection::kQ, Projection::kK, Projection::kV, Projection::kO, Projection::kGate,
               Projection::kUp, Projection::kDown},
              4, 8.0f / 2.0f);  // alpha / sqrt(r)
  expect_matches_file("legal-rs", **w);
}

TEST(PeftFixtureTest, Wide64) {
  auto w = load_peft_adapter_dir(kAdapters / "wide-64", tiny_llama());
  ASSERT_TRUE(w.ok()) << w.status().message();
  expect_plan(**w, {Projection::kO, Projection::kDown}, 64, 0.5f);
  EXPECT_EQ((*w)->max_rank(), 64);
  expect_matches_file("wide-64", **w);
}

TEST(PeftFixtureTest, MissingOrPickleFiles) {
  EXPECT_TRUE(
      load_peft_adapter_dir(kAdapters / "no-such-adapter", tiny_llama()).status().IsNotFound());
  testing::ScratchDir dir;
  dir.write("adapter_config.json", R"({"peft_type": "LORA", "target_modules": ["q_proj"]})");
  EXPECT_TRUE(load_peft_adapter_dir(dir.path(), tiny_llama()).status().IsNotFound());
  dir.write("adapter_model.bin", "pickle");
  Status s = load_peft_adapter_dir(dir.path(), tiny_llama()).status();
  EXPECT_TRUE(s.IsUnprocessable());
  EXPECT_TRUE(contains(s.message(), "adapter_model.bin")) << s.message();
}

// ---- Synthetic adapters on the fixture model ----

struct Mod {
  int64_t layer;
  Projection proj;
  int64_t rank;
};

// Values k/64 with |k| <= 48: exact in F32, F16 and BF16.
std::vector<float> values(size_t n, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(static_cast<int>((i * 7 + seed) % 97) - 48) / 64;
  return v;
}

std::vector<TestTensor> lora_tensors(const std::vector<Mod>& mods, const std::string& dtype = "F32",
                                     const std::string& infix = "") {
  std::vector<TestTensor> out;
  int seed = 0;
  for (const Mod& m : mods) {
    const std::string base = "base_model.model." + peft_module_name(m.layer, m.proj);
    const int64_t in = engine::projection_in_dim(tiny_llama(), m.proj);
    const int64_t o = engine::projection_out_dim(tiny_llama(), m.proj);
    out.push_back({base + ".lora_A" + infix + ".weight",
                   dtype,
                   {m.rank, in},
                   values(static_cast<size_t>(m.rank * in), ++seed)});
    out.push_back({base + ".lora_B" + infix + ".weight",
                   dtype,
                   {o, m.rank},
                   values(static_cast<size_t>(o * m.rank), ++seed)});
  }
  return out;
}

json config(json target_modules, int64_t r = 8, double alpha = 16) {
  return json{{"peft_type", "LORA"},
              {"r", r},
              {"lora_alpha", alpha},
              {"target_modules", target_modules},
              {"bias", "none"},
              {"use_dora", false},
              {"use_rslora", false},
              {"modules_to_save", nullptr},
              {"fan_in_fan_out", false},
              {"layers_to_transform", nullptr},
              {"layers_pattern", nullptr},
              {"rank_pattern", json::object()},
              {"alpha_pattern", json::object()}};
}

Result<std::shared_ptr<const LoraWeights>> load(const json& cfg,
                                                const std::vector<TestTensor>& tensors) {
  QUILT_ASSIGN_OR_RETURN(PeftConfig parsed, parse_peft_config(cfg.dump(), "adapter_config.json"));
  QUILT_ASSIGN_OR_RETURN(
      auto store,
      engine::TensorStore::from_bytes(testing::make_safetensors(tensors), "adapter.safetensors"));
  return load_peft_adapter(parsed, *store, tiny_llama(), "synthetic");
}

// Asserts that loading fails with `code` and a message holding every part of `parts`.
void expect_error(const Result<std::shared_ptr<const LoraWeights>>& r, StatusCode code,
                  std::initializer_list<std::string> parts) {
  ASSERT_FALSE(r.ok()) << "expected an error mentioning " << *parts.begin();
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  for (const auto& p : parts)
    EXPECT_TRUE(contains(r.status().message(), p)) << r.status().message();
}

std::vector<Mod> every_layer(std::initializer_list<Projection> projs, int64_t rank) {
  std::vector<Mod> out;
  for (int64_t l = 0; l < 2; ++l) {
    for (Projection p : projs) out.push_back({l, p, rank});
  }
  return out;
}

TEST(PeftSyntheticTest, DtypesAndAdapterNameInTensorNames) {
  for (const char* dtype : {"F32", "F16", "BF16"}) {
    const auto tensors = lora_tensors(every_layer({Projection::kK}, 4), dtype, ".default");
    auto w = load(config({"k_proj"}, 4, 4), tensors);
    ASSERT_TRUE(w.ok()) << w.status().message();
    const auto& k = (*w)->layers[1][static_cast<int>(Projection::kK)];
    EXPECT_EQ(k.rank, 4);
    EXPECT_FLOAT_EQ(k.scale, 1.0f);
    EXPECT_EQ(k.a, tensors[2].data) << dtype;  // layer 1's lora_A
    EXPECT_EQ(k.bt[1 * 32 + 0], tensors[3].data[0 * 4 + 1]) << dtype;
  }
}

TEST(PeftSyntheticTest, AllLinearAndFanInFanOut) {
  json cfg = config("all-linear", 2, 2);
  cfg["fan_in_fan_out"] = true;  // nn.Linear: PEFT resets it to false, shapes unchanged
  auto w = load(
      cfg, lora_tensors(every_layer({Projection::kQ, Projection::kK, Projection::kV, Projection::kO,
                                     Projection::kGate, Projection::kUp, Projection::kDown},
                                    2)));
  ASSERT_TRUE(w.ok()) << w.status().message();
  expect_plan(**w,
              {Projection::kQ, Projection::kK, Projection::kV, Projection::kO, Projection::kGate,
               Projection::kUp, Projection::kDown},
              2, 1.0f);
}

TEST(PeftSyntheticTest, RegexTargetModules) {
  const json cfg = config(R"(model\.layers\.1\.self_attn\.(q|k)_proj)");
  auto w = load(cfg, lora_tensors({{1, Projection::kQ, 8}, {1, Projection::kK, 8}}));
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->layers[0][static_cast<int>(Projection::kQ)].rank, 0);
  EXPECT_EQ((*w)->layers[1][static_cast<int>(Projection::kQ)].rank, 8);
  EXPECT_EQ((*w)->layers[1][static_cast<int>(Projection::kK)].rank, 8);
  EXPECT_EQ((*w)->layers[1][static_cast<int>(Projection::kV)].rank, 0);

  // A full match is required: "q_proj" alone matches no module name.
  expect_error(load(config("q_proj"), {}), StatusCode::kUnprocessable,
               {"target_modules", "q_proj", "matches no module"});
  expect_error(load(config("model.layers.(0"), {}), StatusCode::kInvalidArgument,
               {"target_modules", "not a valid regex"});
  // A regex that reaches lm_head.
  expect_error(load(config(R"(.*(q_proj|lm_head))"), {}), StatusCode::kUnprocessable, {"lm_head"});
}

TEST(PeftSyntheticTest, LayersToTransform) {
  json cfg = config({"q_proj", "v_proj"});
  cfg["layers_to_transform"] = {1};
  const auto layer1 = lora_tensors({{1, Projection::kQ, 8}, {1, Projection::kV, 8}});
  auto w = load(cfg, layer1);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->layers[0][static_cast<int>(Projection::kQ)].rank, 0);
  EXPECT_EQ((*w)->layers[1][static_cast<int>(Projection::kV)].rank, 8);

  cfg["layers_pattern"] = "layers";  // what Llama's layer list is called
  EXPECT_TRUE(load(cfg, layer1).ok());
  cfg["layers_pattern"] = {"layers"};
  EXPECT_TRUE(load(cfg, layer1).ok());

  // The single-int form.
  cfg["layers_to_transform"] = 0;
  cfg["layers_pattern"] = nullptr;
  EXPECT_TRUE(load(cfg, lora_tensors({{0, Projection::kQ, 8}, {0, Projection::kV, 8}})).ok());

  // Tensors for a layer the config leaves alone.
  cfg["layers_to_transform"] = {1};
  expect_error(load(cfg, lora_tensors(every_layer({Projection::kQ, Projection::kV}, 8))),
               StatusCode::kUnprocessable, {"model.layers.0.self_attn.q_proj", "does not target"});

  // A layer the model does not have.
  cfg["layers_to_transform"] = {0, 2};
  expect_error(load(cfg, layer1), StatusCode::kUnprocessable, {"layers_to_transform", "2"});

  // Tensors for a layer past the model.
  expect_error(
      load(config({"q_proj"}),
           lora_tensors({{0, Projection::kQ, 8}, {1, Projection::kQ, 8}, {5, Projection::kQ, 8}})),
      StatusCode::kUnprocessable, {"layers.5", "layer 5"});
}

TEST(PeftSyntheticTest, RankAndAlphaPatterns) {
  json cfg = config({"q_proj", "v_proj"}, 8, 16);
  // The full name of one module, and a suffix key for all q_proj.
  cfg["rank_pattern"] = {{"model.layers.1.self_attn.q_proj", 2}, {"q_proj", 4}};
  cfg["alpha_pattern"] = {{"v_proj", 32}};
  auto w = load(cfg, lora_tensors({{0, Projection::kQ, 4},
                                   {0, Projection::kV, 8},
                                   {1, Projection::kQ, 2},
                                   {1, Projection::kV, 8}}));
  ASSERT_TRUE(w.ok()) << w.status().message();
  const auto& l0 = (*w)->layers[0];
  const auto& l1 = (*w)->layers[1];
  EXPECT_EQ(l0[static_cast<int>(Projection::kQ)].rank, 4);
  EXPECT_FLOAT_EQ(l0[static_cast<int>(Projection::kQ)].scale, 16.0f / 4);
  EXPECT_EQ(l1[static_cast<int>(Projection::kQ)].rank, 2);
  EXPECT_FLOAT_EQ(l1[static_cast<int>(Projection::kQ)].scale, 16.0f / 2);
  EXPECT_EQ(l0[static_cast<int>(Projection::kV)].rank, 8);
  EXPECT_FLOAT_EQ(l0[static_cast<int>(Projection::kV)].scale, 32.0f / 8);

  // PEFT takes the first matching key in file order: with "q_proj" first, layer 1 gets 4 too.
  cfg["rank_pattern"] = json::parse(R"({"q_proj": 4, "model.layers.1.self_attn.q_proj": 2})");
  w = load(cfg, lora_tensors({{0, Projection::kQ, 4},
                              {0, Projection::kV, 8},
                              {1, Projection::kQ, 4},
                              {1, Projection::kV, 8}}));
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->layers[1][static_cast<int>(Projection::kQ)].rank, 4);

  // Keys are regexes over the module name, anchored at a dot boundary.
  cfg["rank_pattern"] = json::parse(R"({"layers\\.1\\..*": 2})");
  cfg["use_rslora"] = true;
  w = load(cfg, lora_tensors({{0, Projection::kQ, 8},
                              {0, Projection::kV, 8},
                              {1, Projection::kQ, 2},
                              {1, Projection::kV, 2}}));
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ((*w)->layers[1][static_cast<int>(Projection::kV)].rank, 2);
  EXPECT_FLOAT_EQ((*w)->layers[1][static_cast<int>(Projection::kV)].scale,
                  static_cast<float>(32.0 / std::sqrt(2.0)));
  EXPECT_FLOAT_EQ((*w)->layers[0][static_cast<int>(Projection::kQ)].scale,
                  static_cast<float>(16.0 / std::sqrt(8.0)));

  // "_proj" does not match "q_proj" at a dot boundary, so r stays 8 and a rank-2 file is wrong.
  cfg["rank_pattern"] = {{"_proj", 2}};
  expect_error(load(cfg, lora_tensors(every_layer({Projection::kQ, Projection::kV}, 2))),
               StatusCode::kUnprocessable, {"[2, 64]", "[8, 64]"});

  cfg["rank_pattern"] = {{"q_proj", 0}};
  expect_error(load(cfg, {}), StatusCode::kUnprocessable, {"rank_pattern", "q_proj"});
}

TEST(PeftSyntheticTest, ExcludeModules) {
  json cfg = config("all-linear");
  cfg["exclude_modules"] = {"gate_proj", "up_proj", "down_proj", "o_proj", "k_proj"};
  auto w = load(cfg, lora_tensors(every_layer({Projection::kQ, Projection::kV}, 8)));
  ASSERT_TRUE(w.ok()) << w.status().message();
  expect_plan(**w, {Projection::kQ, Projection::kV}, 8, 2.0f);
}

TEST(PeftRejectionTest, UnsupportedConfigFeatures) {
  const auto tensors = lora_tensors(every_layer({Projection::kQ}, 8));
  const std::vector<std::pair<std::string, json>> cases = {
      {"use_dora", true},
      {"modules_to_save", json::array({"lm_head"})},
      {"bias", "all"},
      {"bias", "lora_only"},
      {"lora_bias", true},
      {"peft_type", "IA3"},
      {"layer_replication", {{0, 1}, {0, 2}}},
      {"trainable_token_indices", {1, 2}},
      {"init_lora_weights", "pissa_niter_4"},
  };
  for (const auto& [key, value] : cases) {
    json cfg = config({"q_proj"});
    cfg[key] = value;
    expect_error(load(cfg, tensors), StatusCode::kUnprocessable, {key});
  }
  // Defaults and nulls of the same fields are fine.
  json cfg = config({"q_proj"});
  cfg["modules_to_save"] = json::array();
  cfg["init_lora_weights"] = true;
  cfg["layer_replication"] = nullptr;
  EXPECT_TRUE(load(cfg, tensors).ok());
}

TEST(PeftRejectionTest, UnservableTargets) {
  expect_error(load(config({"q_proj", "embed_tokens"}), {}), StatusCode::kUnprocessable,
               {"embed_tokens"});
  expect_error(load(config({"q_proj", "lm_head"}), {}), StatusCode::kUnprocessable, {"lm_head"});
  expect_error(load(config({"q_proj", "c_attn"}), {}), StatusCode::kUnprocessable,
               {"c_attn", "matches no module"});
  expect_error(load(config({"input_layernorm"}), {}), StatusCode::kUnprocessable,
               {"input_layernorm", "not a linear projection"});
  expect_error(load(config({"q_proj"}, 0), {}), StatusCode::kUnprocessable, {"r must be positive"});
  expect_error(load(config({"q_proj"}, -4), {}), StatusCode::kUnprocessable,
               {"r must be positive"});
}

TEST(PeftRejectionTest, UnexpectedMissingOrMisshapedTensors) {
  const auto qv = every_layer({Projection::kQ, Projection::kV}, 8);
  const json cfg = config({"q_proj", "v_proj"});
  ASSERT_TRUE(load(cfg, lora_tensors(qv)).ok());

  for (const std::string extra :
       {"base_model.model.model.embed_tokens.lora_embedding_A",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias",
        "base_model.model.lm_head.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"}) {
    auto tensors = lora_tensors(qv);
    tensors.push_back({extra, "F32", {1}, {0.5f}});
    expect_error(load(cfg, tensors), StatusCode::kUnprocessable, {extra});
  }

  // A targeted module with only one of its two matrices.
  auto tensors = lora_tensors(qv);
  std::erase_if(tensors, [](const TestTensor& t) {
    return t.name.ends_with("1.self_attn.v_proj.lora_B.weight");
  });
  expect_error(load(cfg, tensors), StatusCode::kUnprocessable,
               {"base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", "missing"});

  // Wrong rank in one lora_A: the message names the tensor and both shapes.
  tensors = lora_tensors(qv);
  tensors[0].shape = {4, 128};  // layer 0 q_proj lora_A, same byte size as [8, 64]
  expect_error(load(cfg, tensors), StatusCode::kUnprocessable,
               {"model.layers.0.self_attn.q_proj.lora_A.weight", "[4, 128]", "[8, 64]"});

  // lora_B given as [rank, out] (not transposed as PEFT stores it).
  tensors = lora_tensors(qv);
  tensors[1].shape = {8, 64};  // layer 0 q_proj lora_B
  expect_error(load(cfg, tensors), StatusCode::kUnprocessable, {"lora_B", "[8, 64]", "[64, 8]"});

  // The same matrix twice, with and without the adapter name.
  tensors = lora_tensors(qv);
  auto dup = tensors[0];
  dup.name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight";
  tensors.push_back(dup);
  expect_error(load(cfg, tensors), StatusCode::kUnprocessable, {"lora_A.default.weight"});

  // Non-finite weights.
  tensors = lora_tensors(qv);
  tensors[1].data[5] = NAN;
  expect_error(load(cfg, tensors), StatusCode::kUnprocessable, {"non-finite"});
}

TEST(PeftRejectionTest, MalformedConfigNamesTheField) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"r", "8"},
      {"r", 8.5},
      {"lora_alpha", "sixteen"},
      {"use_rslora", "yes"},
      {"target_modules", 5},
      {"target_modules", json::array({"q_proj", 3})},
      {"layers_to_transform", "1"},
      {"layers_to_transform", {1.5}},
      {"layers_pattern", 7},
      {"rank_pattern", {1, 2}},
      {"alpha_pattern", {{"q_proj", "x"}}},
      {"rank_pattern", {{"q_proj", 2.5}}},
      {"exclude_modules", 1},
      {"bias", false},
      {"modules_to_save", "lm_head"},
      {"peft_type", 1},
  };
  for (const auto& [key, value] : cases) {
    json cfg = config({"q_proj"});
    cfg[key] = value;
    auto r = parse_peft_config(cfg.dump(), "adapter_config.json");
    ASSERT_FALSE(r.ok()) << key << " = " << value.dump();
    EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().message();
    EXPECT_TRUE(contains(r.status().message(), key)) << r.status().message();
    EXPECT_TRUE(contains(r.status().message(), "adapter_config.json")) << r.status().message();
  }
  EXPECT_TRUE(parse_peft_config("{\"r\": ", "a.json").status().IsInvalidArgument());
  EXPECT_TRUE(parse_peft_config("[]", "a.json").status().IsInvalidArgument());
  json cfg = config({"q_proj"});
  cfg.erase("peft_type");
  EXPECT_TRUE(contains(parse_peft_config(cfg.dump(), "a.json").status().message(), "peft_type"));

  // A regex target with layers_to_transform: LoraConfig refuses it as well.
  cfg = config(".*q_proj");
  cfg["layers_to_transform"] = {0};
  expect_error(load(cfg, {}), StatusCode::kInvalidArgument, {"layers_to_transform"});
}

TEST(PeftConfigTest, ParsesEveryTargetForm) {
  auto c = parse_peft_config(config({"q_proj", "v_proj"}).dump(), "a");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->target_modules_list, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_FALSE(c->target_modules_regex.has_value());
  EXPECT_EQ(c->r, 8);
  EXPECT_DOUBLE_EQ(c->lora_alpha, 16);

  c = parse_peft_config(config("ALL-LINEAR").dump(), "a");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->target_all_linear);

  c = parse_peft_config(config(".*proj").dump(), "a");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->target_modules_regex, std::optional<std::string>(".*proj"));

  json j = config(nullptr);  // PEFT's default for llama / mistral
  j["layers_to_transform"] = json::array();
  j["rank_pattern"] = json::parse(R"({"z": 1, "a": 2})");
  c = parse_peft_config(j.dump(), "a");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->target_modules_list, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_FALSE(c->layers_to_transform.has_value());  // [] means every layer
  EXPECT_EQ(c->rank_pattern_order, (std::vector<std::string>{"z", "a"}));
}

}  // namespace
}  // namespace quilt::adapters
