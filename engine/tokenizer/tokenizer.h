// The Hugging Face tokenizer of a model directory (byte-level BPE) and its chat template.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer/chat_template.h"

namespace quilt::engine {

class AddedTokenMatcher;
class BpeModel;
class PreTokenizer;

// Loaded once, then read-only: every const method is thread-safe and may be called from many
// threads at once (the BPE word cache inside is locked).
//
// Supported tokenizer.json: model BPE (merges as "a b" or ["a", "b"], ignore_merges, byte_fallback,
// unk_token); normalizer null or an empty Sequence; pre_tokenizer Sequence / Split / ByteLevel;
// post_processor TemplateProcessing / ByteLevel / Roberta / Bert / Sequence (only the single-
// sequence template matters); decoder ByteLevel. Anything else is refused at load with a Status
// naming the file and field, rather than tokenizing differently from Hugging Face.
class Tokenizer {
 public:
  // Reads tokenizer.json and tokenizer_config.json (bos/eos tokens, chat_template) from
  // `model_dir`; a chat_template.jinja there replaces the config's template, as in transformers.
  static Result<std::unique_ptr<Tokenizer>> load(const std::filesystem::path& model_dir);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Ill-formed UTF-8 in `text` is first replaced by U+FFFD. With add_special_tokens the post-
  // processor's tokens (BOS for Llama 3) are added around the text.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Unknown ids are skipped; bytes that do not form UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // Raw bytes of one token (byte-level decoded; added tokens give their content).
  std::string token_bytes(int32_t id) const;

  // One past the largest id of the vocabulary and the added tokens.
  int32_t vocab_size() const { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }

  // nullptr when the model has no chat template.
  const ChatTemplate* chat_template() const { return chat_template_ ? &*chat_template_ : nullptr; }
  // Renders the chat template with bos_token and eos_token filled in unless extra_context sets
  // them; InvalidArgument when the model has no template.
  Result<std::string> apply_chat_template(
      const nlohmann::json& messages, bool add_generation_prompt,
      const nlohmann::json& extra_context = nlohmann::json::object()) const;

 private:
  Tokenizer();

  // Constant after load().
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;  // nullptr: each text segment is one word
  std::unique_ptr<AddedTokenMatcher> added_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // what add_special_tokens puts around the text
  std::vector<std::string> token_bytes_;          // by id
  std::vector<uint8_t> special_;                  // by id
  int32_t vocab_size_ = 0;
  std::string bos_token_, eos_token_;
  std::optional<int32_t> bos_id_, eos_id_;
  std::optional<ChatTemplate> chat_template_;
};

// Turns a stream of token ids into text without ever emitting half a UTF-8 character: push()
// returns only complete text and holds back an unfinished trailing character; finish() flushes
// what is left (an unfinished character becomes U+FFFD, as in Hugging Face's decode). One per
// stream; not thread-safe. The tokenizer must outlive it.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens = false)
      : tok_(tok), skip_special_tokens_(skip_special_tokens) {}

  std::string push(int32_t id);
  std::string finish();

 private:
  const Tokenizer& tok_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes of a character not yet complete
};

}  // namespace quilt::engine
