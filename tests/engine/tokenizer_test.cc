// Tokenizer: encodes exactly like Hugging Face on the fixture, decodes, streams valid UTF-8.
#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

const std::filesystem::path kModelDir = QUILT_SOURCE_DIR "/examples/models/tiny-llama";

nlohmann::json expected() {
  std::ifstream in(QUILT_SOURCE_DIR "/tests/data/expected.json");
  return nlohmann::json::parse(in);
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = Tokenizer::load(kModelDir);
    ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
    tok_ = std::move(loaded).value().release();
    fixture_ = new nlohmann::json(expected());
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete fixture_;
  }
  static const Tokenizer* tok_;
  static const nlohmann::json* fixture_;
};
const Tokenizer* TokenizerTest::tok_ = nullptr;
const nlohmann::json* TokenizerTest::fixture_ = nullptr;

TEST_F(TokenizerTest, EncodesFixtureCasesExactly) {
  ASSERT_TRUE((*fixture_)["tokenizer_cases"].is_array());
  ASSERT_GT((*fixture_)["tokenizer_cases"].size(), 0u);
  for (const auto& c : (*fixture_)["tokenizer_cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(tok_->encode(text, false), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok_->encode(text, true), c["ids_with_bos"].get<std::vector<int32_t>>()) << text;
  }
}

TEST_F(TokenizerTest, EncodesPromptsWithBos) {
  int checked = 0;
  for (const auto& c : (*fixture_)["cases"]) {
    if (c["prompt"].is_null()) continue;
    const std::string prompt = c["prompt"].get<std::string>();
    EXPECT_EQ(tok_->encode(prompt, true), c["prompt_ids"].get<std::vector<int32_t>>()) << prompt;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST_F(TokenizerTest, DecodeRoundTrips) {
  std::vector<std::string> texts;
  for (const auto& c : (*fixture_)["tokenizer_cases"])
    texts.push_back(c["text"].get<std::string>());
  for (const auto& c : (*fixture_)["cases"]) {
    if (!c["prompt"].is_null()) texts.push_back(c["prompt"].get<std::string>());
  }
  for (const std::string& text : texts) {
    EXPECT_EQ(tok_->decode(tok_->encode(text, false)), text);
    EXPECT_EQ(tok_->decode(tok_->encode(text, true), /*skip_special_tokens=*/true), text);
  }
  const std::string chat = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>";
  EXPECT_EQ(tok_->decode(tok_->encode(chat, true)), "<|begin_of_text|>" + chat);
  EXPECT_EQ(tok_->decode(tok_->encode(chat, true), /*skip_special_tokens=*/true), "user\n\nhi");
}

TEST_F(TokenizerTest, SpecialTokensAndConfig) {
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(tok_->eos_token(), "<|eot_id|>");
  EXPECT_EQ(tok_->bos_id(), 0);
  EXPECT_EQ(tok_->eos_id(), 4);
  EXPECT_TRUE(tok_->is_special(0));
  EXPECT_TRUE(tok_->is_special(4));
  EXPECT_FALSE(tok_->is_special(44));
  EXPECT_EQ(tok_->token_to_id("<|start_header_id|>"), 2);
  EXPECT_EQ(tok_->token_to_id("Ġt"), 261);
  EXPECT_FALSE(tok_->token_to_id("no such token").has_value());
  EXPECT_EQ(tok_->token_bytes(4), "<|eot_id|>");
  EXPECT_EQ(tok_->token_bytes(261), " t");  // byte-level "Ġt"
  EXPECT_EQ(tok_->token_bytes(225), " ");
  EXPECT_EQ(tok_->token_bytes(-1), "");
  EXPECT_EQ(tok_->token_bytes(100000), "");
  // Special tokens in text are matched whole, never split by BPE.
  EXPECT_EQ(tok_->encode("<|eot_id|><|eot_id|>", false), (std::vector<int32_t>{4, 4}));
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{0, 44, 4}, true), "H");
  ASSERT_NE(tok_->chat_template(), nullptr);
}

TEST_F(TokenizerTest, EqualRankMergesApplyLeftmostFirst) {
  // "a    b" pre-tokenizes to "a", "ĠĠĠ", "Ġb". Merging the left "Ġ Ġ" first leaves
  // "ĠĠ Ġ", which merges to "ĠĠĠ" (313); merging the right one first would strand [Ġ, ĠĠ].
  EXPECT_EQ(tok_->encode("a    b", false), (std::vector<int32_t>{69, 313, 270}));
  // Six spaces: [ĠĠ, ĠĠ, ĠĠ], then the left "ĠĠ ĠĠ" wins: [ĠĠĠĠ, ĠĠ].
  EXPECT_EQ(tok_->encode("a       b", false), (std::vector<int32_t>{69, 295, 264, 270}));
}

TEST_F(TokenizerTest, InvalidUtf8InputIsReplaced) {
  const std::string bad = "ok\xff";
  EXPECT_EQ(tok_->encode(bad, false), tok_->encode("ok\xEF\xBF\xBD", false));
}

// Every push must be complete UTF-8, and together they must be the text.
void expect_streams(const Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text, false);
  IncrementalDecoder decoder(tok);
  std::string streamed;
  bool held_back = false;
  for (int32_t id : ids) {
    const std::string piece = decoder.push(id);
    EXPECT_TRUE(utf8_is_valid(piece)) << "token " << id;
    held_back = held_back || (piece.empty() && !tok.token_bytes(id).empty());
    streamed += piece;
  }
  const std::string rest = decoder.finish();
  EXPECT_TRUE(utf8_is_valid(rest));
  streamed += rest;
  EXPECT_EQ(streamed, text);
  // These texts split characters across tokens, so something must have been held back.
  EXPECT_TRUE(held_back) << text;
}

TEST_F(TokenizerTest, IncrementalDecoderNeverSplitsCharacters) {
  expect_streams(*tok_, "emoji 🙂👍🏽 done");
  expect_streams(*tok_, "数据 模型 推理");
}

TEST_F(TokenizerTest, IncrementalDecoderFlushesPartialByteAsReplacement) {
  // A token that is one lead byte of a 4-byte character.
  const auto lead = tok_->token_to_id("ð");  // byte-level char of 0xF0
  ASSERT_TRUE(lead.has_value());
  EXPECT_EQ(tok_->token_bytes(*lead), "\xF0");
  IncrementalDecoder decoder(*tok_);
  EXPECT_EQ(decoder.push(*lead), "");
  EXPECT_EQ(decoder.finish(), "\xEF\xBF\xBD");
  // Like Hugging Face's DecodeStream, text that decodes to a trailing U+FFFD (here a lone
  // continuation byte) waits for the next token, which shows whether it was complete.
  const auto cont = tok_->token_to_id("Ģ");  // 0x80 maps past U+0100
  ASSERT_TRUE(cont.has_value());
  IncrementalDecoder decoder2(*tok_);
  EXPECT_EQ(decoder2.push(*cont), "");
  EXPECT_EQ(decoder2.push(44), "\xEF\xBF\xBDH");
  EXPECT_EQ(decoder2.finish(), "");
  IncrementalDecoder decoder3(*tok_);
  EXPECT_EQ(decoder3.push(*cont), "");
  EXPECT_EQ(decoder3.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{*lead, 44}), "\xEF\xBF\xBDH");
}

TEST_F(TokenizerTest, EncodeIsThreadSafe) {
  const auto& cases = (*fixture_)["tokenizer_cases"];
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        for (const auto& c : cases) {
          if (tok_->encode(c["text"].get<std::string>(), true) !=
              c["ids_with_bos"].get<std::vector<int32_t>>()) {
            ++mismatches;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerLoadTest, ErrorsNameTheFileAndField) {
  const auto missing = Tokenizer::load("/nonexistent/model");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("tokenizer.json"), std::string::npos);

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("quilt_tok_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name) << text;
  };
  std::ifstream original(kModelDir / "tokenizer.json");
  nlohmann::json tj = nlohmann::json::parse(original);
  write("tokenizer_config.json", R"({"bos_token": {"content": "<|begin_of_text|>"}})");

  write("tokenizer.json", "{ not json");
  auto bad = Tokenizer::load(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not valid JSON"), std::string::npos);

  // Each unsupported component is refused with the file, the field and the value.
  struct Refused {
    const char* field;
    nlohmann::json value;
    const char* where;  // expected in the message
    const char* what;
  };
  const Refused refused[] = {
      {"normalizer", {{"type", "NoSuchNormalizer"}}, "normalizer.type", "NoSuchNormalizer"},
      {"pre_tokenizer",
       {{"type", "Sequence"}, {"pretokenizers", {{{"type", "UnicodeScripts"}}}}},
       "pre_tokenizer.pretokenizers[0].type",
       "UnicodeScripts"},
      {"decoder", {{"type", "NoSuchDecoder"}}, "decoder.type", "NoSuchDecoder"},
      {"post_processor", {{"type", "NoSuchProcessor"}}, "post_processor.type", "NoSuchProcessor"},
  };
  for (const Refused& r : refused) {
    nlohmann::json changed = tj;
    changed[r.field] = r.value;
    write("tokenizer.json", changed.dump());
    auto unsupported = Tokenizer::load(dir);
    ASSERT_FALSE(unsupported.ok()) << r.field;
    EXPECT_TRUE(unsupported.status().IsUnimplemented()) << unsupported.status().to_string();
    const std::string message = unsupported.status().message();
    EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
    EXPECT_NE(message.find(r.where), std::string::npos) << message;
    EXPECT_NE(message.find(r.what), std::string::npos) << message;
  }
  nlohmann::json wordlevel = tj;
  wordlevel["model"]["type"] = "WordLevel";
  write("tokenizer.json", wordlevel.dump());
  auto bad_model = Tokenizer::load(dir);
  ASSERT_FALSE(bad_model.ok());
  EXPECT_NE(bad_model.status().message().find("model.type"), std::string::npos);
  EXPECT_NE(bad_model.status().message().find("WordLevel"), std::string::npos);

  // Merges given as [a, b] pairs and a bos_token given as an object load too; no chat template.
  nlohmann::json pairs = tj;
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& m : tj["model"]["merges"]) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      merges.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
    } else {
      merges.push_back(m);
    }
  }
  pairs["model"]["merges"] = merges;
  write("tokenizer.json", pairs.dump());
  auto ok = Tokenizer::load(dir);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)->encode("Hello world", true),
            (std::vector<int32_t>{0, 44, 431, 325, 303, 83, 86, 80, 72}));
  EXPECT_EQ((*ok)->bos_id(), 0);
  EXPECT_EQ((*ok)->chat_template(), nullptr);

  // chat_template.jinja is picked up; a broken one fails the load with its line.
  write("chat_template.jinja", "{% for m in messages %}{{ m.content }}");
  auto broken = Tokenizer::load(dir);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("chat_template.jinja"), std::string::npos);
  EXPECT_NE(broken.status().message().find("line 1"), std::string::npos);
  write("chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
  auto with_template = Tokenizer::load(dir);
  ASSERT_TRUE(with_template.ok());
  ASSERT_NE((*with_template)->chat_template(), nullptr);
  EXPECT_EQ(*(*with_template)
                 ->apply_chat_template(nlohmann::json::parse(R"([{"role":"user","content":"hi"}])"),
                                       false),
            "hi");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace quilt::engine
