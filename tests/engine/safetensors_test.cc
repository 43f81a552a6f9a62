// Tests of safetensors parsing: the sharded fixture, dtype conversion, and malformed files.
#include "engine/weights/safetensors.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/engine/safetensors_writer.h"

namespace quilt::engine {
namespace {

using nlohmann::json;
using testing::TestTensor;

const std::filesystem::path kTinyLlama =
    std::filesystem::path(QUILT_SOURCE_DIR) / "examples/models/tiny-llama";

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A view over 16-bit patterns, for conversion tests.
TensorView view_of(const std::vector<uint16_t>& bits, DType dtype) {
  TensorView t;
  t.name = "t";
  t.dtype = dtype;
  t.shape = {static_cast<int64_t>(bits.size())};
  t.data = reinterpret_cast<const std::byte*>(bits.data());
  return t;
}

TEST(SafetensorsTest, FixtureShardsOpenWithEveryIndexedTensor) {
  auto store = TensorStore::open_dir(kTinyLlama);
  ASSERT_TRUE(store.ok()) << store.status().message();

  std::ifstream in(kTinyLlama / "model.safetensors.index.json");
  const json index = json::parse(in);
  const auto& weight_map = index.at("weight_map");
  EXPECT_EQ((*store)->tensors().size(), weight_map.size());
  for (const auto& [name, shard] : weight_map.items()) {
    const TensorView* t = (*store)->find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, DType::kBF16) << name;
    EXPECT_TRUE(t->file.ends_with(shard.get<std::string>())) << name << " in " << t->file;
    EXPECT_EQ(t->name, name);
    // Shapes by role (hidden 64, vocab 512, intermediate 176, 4 heads / 2 kv heads of 16).
    std::vector<int64_t> expected;
    if (name.ends_with("norm.weight"))
      expected = {64};
    else if (name.ends_with("embed_tokens.weight") || name == "lm_head.weight")
      expected = {512, 64};
    else if (name.ends_with("q_proj.weight") || name.ends_with("o_proj.weight"))
      expected = {64, 64};
    else if (name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight"))
      expected = {32, 64};
    else if (name.ends_with("gate_proj.weight") || name.ends_with("up_proj.weight"))
      expected = {176, 64};
    else if (name.ends_with("down_proj.weight"))
      expected = {64, 176};
    EXPECT_EQ(t->shape, expected) << name;
  }

  // Values as Python decodes them from the files.
  auto norm = (*store)->get("model.norm.weight", {64});
  ASSERT_TRUE(norm.ok()) << norm.status().message();
  const std::vector<float> n = to_float32(**norm);
  EXPECT_EQ(n[0], 0.78125f);
  EXPECT_EQ(n[1], 0.56640625f);
  EXPECT_EQ(n[63], 0.94140625f);
  const std::vector<float> e = to_float32(*(*store)->find("model.embed_tokens.weight"));
  EXPECT_EQ(e[0], -0.0810546875f);
  EXPECT_EQ(e[1], -0.09228515625f);
  EXPECT_EQ(e[64 * 511 + 63], 0.09033203125f);
}

TEST(SafetensorsTest, Bf16ConversionIsExact) {
  const std::vector<uint16_t> bits = {0x3f80, 0xc000, 0x3f48, 0x7f80, 0xff80,
                                      0x7fc0, 0x0001, 0x8000, 0x7f7f};
  const std::vector<float> f = to_float32(view_of(bits, DType::kBF16));
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], 0.78125f);
  EXPECT_EQ(f[3], INFINITY);
  EXPECT_EQ(f[4], -INFINITY);
  EXPECT_TRUE(std::isnan(f[5]));
  EXPECT_EQ(f[6], std::ldexp(1.0f, -133));  // the smallest bf16 subnormal
  EXPECT_EQ(f[7], 0.0f);
  EXPECT_TRUE(std::signbit(f[7]));
  EXPECT_EQ(std::bit_cast<uint32_t>(f[8]), 0x7f7f0000u);  // the largest finite bf16
}

TEST(SafetensorsTest, F16ConversionIsExact) {
  const std::vector<uint16_t> bits = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x7c00,
                                      0xfc00, 0x7e00, 0x8000, 0x3555, 0x8001, 0x7c01};
  const std::vector<float> f = to_float32(view_of(bits, DType::kF16));
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], 65504.0f);
  EXPECT_EQ(f[3], std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f[4], std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f[5], std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(f[6], INFINITY);
  EXPECT_EQ(f[7], -INFINITY);
  EXPECT_TRUE(std::isnan(f[8]));
  EXPECT_EQ(f[9], 0.0f);
  EXPECT_TRUE(std::signbit(f[9]));
  EXPECT_EQ(f[10], 0.333251953125f);
  EXPECT_EQ(f[11], -std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isnan(f[12]));  // a signalling-NaN pattern stays NaN, never inf
}

TEST(SafetensorsTest, EveryHalfRoundTripsThroughTheWriter) {
  // All 65536 half patterns: widen, then narrow with the test writer; each finite one survives.
  for (uint32_t h = 0; h < 65536; ++h) {
    const std::vector<uint16_t> bits = {static_cast<uint16_t>(h)};
    const float f = to_float32(view_of(bits, DType::kF16))[0];
    if (std::isnan(f)) continue;
    ASSERT_EQ(testing::float_to_f16_bits(f), h) << std::hex << h;
  }
}

TEST(SafetensorsTest, FromBytesRoundTripsEveryDtype) {
  const std::vector<float> v = testing::ramp(24);
  const std::string image = testing::make_safetensors({{"a", "F32", {4, 6}, v},
                                                       {"b", "F16", {2, 12}, v},
                                                       {"c", "BF16", {24}, v},
                                                       {"empty", "F32", {0, 3}, {}}});
  auto store = TensorStore::from_bytes(image, "upload.safetensors");
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_EQ((*store)->tensors().size(), 4u);
  for (const char* name : {"a", "b", "c"}) {
    const TensorView* t = (*store)->find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->num_elements(), 24);
    EXPECT_EQ(t->file, "upload.safetensors");
    EXPECT_EQ(to_float32(*t), v) << name;
  }
  EXPECT_EQ((*store)->find("b")->dtype, DType::kF16);
  EXPECT_EQ((*store)->find("empty")->num_elements(), 0);
  EXPECT_STREQ(dtype_name(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_size(DType::kF32), 4);
  EXPECT_EQ(dtype_size(DType::kF16), 2);
}

TEST(SafetensorsTest, GetChecksShapeAndNamesFileTensorAndShapes) {
  auto store = TensorStore::from_bytes(
      testing::make_safetensors({{"w", "F32", {2, 3}, testing::ramp(6)}}), "up.safetensors");
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->get("w", {2, 3}).ok());
  Status s = (*store)->get("w", {3, 2}).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "up.safetensors")) << s.message();
  EXPECT_TRUE(contains(s.message(), "'w'")) << s.message();
  EXPECT_TRUE(contains(s.message(), "[2, 3]")) << s.message();
  EXPECT_TRUE(contains(s.message(), "[3, 2]")) << s.message();
  s = (*store)->get("missing", {1}).status();
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_TRUE(contains(s.message(), "missing")) << s.message();
}

TEST(SafetensorsTest, EveryTruncationIsAnErrorNotACrash) {
  const std::string image = testing::make_safetensors(
      {{"a", "F32", {3, 4}, testing::ramp(12)}, {"b", "BF16", {5}, testing::ramp(5)}});
  ASSERT_TRUE(TensorStore::from_bytes(image, "ok").ok());
  for (size_t n = 0; n < image.size(); ++n) {
    auto r = TensorStore::from_bytes(image.substr(0, n), "cut");
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    if (!r.ok()) {
      EXPECT_TRUE(contains(r.status().message(), "cut"));
    }
  }
}

TEST(SafetensorsTest, BadHeaderLengthsAreErrors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const std::string data(4, '\0');
  ASSERT_TRUE(
      TensorStore::from_bytes(testing::make_safetensors_raw(header, data, header.size()), "x")
          .ok());
  for (uint64_t len : {uint64_t{0}, uint64_t{3}, uint64_t{header.size() + 5}, uint64_t{1} << 40,
                       ~uint64_t{0}, uint64_t{header.size() - 1}}) {
    auto r = TensorStore::from_bytes(testing::make_safetensors_raw(header, data, len), "x");
    EXPECT_FALSE(r.ok()) << "header length " << len;
  }
  // Random garbage never crashes.
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string junk(rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    EXPECT_FALSE(TensorStore::from_bytes(junk, "junk").ok());
  }
}

TEST(SafetensorsTest, MalformedEntriesAreErrorsNamingTheTensor) {
  struct Case {
    std::string header;
    std::string expect;  // a part of the message
  };
  const std::vector<Case> cases = {
      {R"({"big":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "big"},  // past the end
      {R"({"rev":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", "rev"},   // begin > end
      {R"({"len":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "len"},   // 12 != 8 bytes
      {R"({"ints":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", "I64"},  // dtype
      {R"({"neg":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "neg"},
      {R"({"ovf":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", "ovf"},
      {R"({"noshape":{"dtype":"F32","data_offsets":[0,8]}})", "noshape"},
      {R"({"offs":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "offs"},
      {R"({"frac":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}})", "frac"},
      {R"({"str":"F32"})", "str"},
      {R"([1,2,3])", "not a JSON object"},
      {R"({"a":)", "not a JSON object"},
  };
  for (const auto& c : cases) {
    const std::string data(8, '\0');
    auto r = TensorStore::from_bytes(testing::make_safetensors_raw(c.header, data, c.header.size()),
                                     "bad.safetensors");
    ASSERT_FALSE(r.ok()) << c.header;
    EXPECT_TRUE(contains(r.status().message(), c.expect)) << r.status().message();
    EXPECT_TRUE(contains(r.status().message(), "bad.safetensors")) << r.status().message();
  }
  // The unsupported-dtype message names the tensor too.
  TestTensor t{"ids", "I64", {1}, {}, std::string(8, '\0')};
  auto r = TensorStore::from_bytes(testing::make_safetensors({t}), "u");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "'ids'")) << r.status().message();
}

TEST(SafetensorsTest, FilesAndDirectories) {
  testing::ScratchDir dir;
  EXPECT_TRUE(TensorStore::open_file(dir.path() / "none.safetensors").status().IsNotFound());
  EXPECT_TRUE(TensorStore::open_dir(dir.path()).status().IsNotFound());

  // A single-file model directory.
  dir.write("model.safetensors", testing::make_safetensors({{"x", "BF16", {2, 2}, {1, 2, 3, 4}}}));
  auto single = TensorStore::open_dir(dir.path());
  ASSERT_TRUE(single.ok()) << single.status().message();
  EXPECT_EQ(to_float32(*(*single)->find("x")), (std::vector<float>{1, 2, 3, 4}));

  // An empty and a truncated file on disk.
  const auto empty = dir.write("empty.safetensors", "");
  Status s = TensorStore::open_file(empty).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "empty.safetensors")) << s.message();
  const std::string image = testing::make_safetensors({{"x", "F32", {8}, testing::ramp(8)}});
  const auto cut = dir.write("cut.safetensors", image.substr(0, image.size() - 1));
  EXPECT_FALSE(TensorStore::open_file(cut).ok());
}

TEST(SafetensorsTest, ShardedIndexErrors) {
  testing::ScratchDir dir;
  dir.write("a.safetensors", testing::make_safetensors({{"x", "F32", {1}, {1}}}));
  dir.write("b.safetensors", testing::make_safetensors({{"y", "F32", {1}, {2}}}));
  const auto write_index = [&](const json& weight_map) {
    dir.write("model.safetensors.index.json", json{{"weight_map", weight_map}}.dump());
  };

  write_index({{"x", "a.safetensors"}, {"y", "b.safetensors"}});
  auto ok = TensorStore::open_dir(dir.path());
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ((*ok)->tensors().size(), 2u);

  // Listed in a shard that does not hold it: the error names the tensor and the shard.
  write_index({{"x", "a.safetensors"}, {"y", "a.safetensors"}});
  Status s = TensorStore::open_dir(dir.path()).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "'y'")) << s.message();
  EXPECT_TRUE(contains(s.message(), "a.safetensors")) << s.message();

  write_index({{"x", "a.safetensors"}, {"z", "missing.safetensors"}});
  s = TensorStore::open_dir(dir.path()).status();
  EXPECT_TRUE(contains(s.message(), "missing.safetensors")) << s.message();

  write_index({{"x", "../a.safetensors"}});
  EXPECT_FALSE(TensorStore::open_dir(dir.path()).ok());

  // The same tensor in two shards is ambiguous.
  dir.write("c.safetensors",
            testing::make_safetensors({{"x", "F32", {1}, {3}}, {"y", "F32", {1}, {4}}}));
  write_index({{"x", "a.safetensors"}, {"y", "c.safetensors"}});
  s = TensorStore::open_dir(dir.path()).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "'x'")) << s.message();

  dir.write("model.safetensors.index.json", R"({"weight_map": [1]})");
  s = TensorStore::open_dir(dir.path()).status();
  EXPECT_TRUE(contains(s.message(), "weight_map")) << s.message();
}

}  // namespace
}  // namespace quilt::engine
