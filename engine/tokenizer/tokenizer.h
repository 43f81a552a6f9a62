// The Hugging Face tokenizer of a model directory (tokenizer.json) and its chat template.
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
class Decoder;
class Normalizer;
class PreTokenizer;
class TokenizerModel;

// Loaded once, then read-only: every const method is thread-safe and may be called from many
// threads at once (the BPE word cache inside is locked).
//
// The tokenizer.json pipeline of Hugging Face tokenizers: added tokens, normalizer
// (normalizer.h), pre-tokenizer (pre_tokenizer.h), model (tokenizer_model.h: BPE, WordPiece,
// Unigram), post-processor (post_processor.h; only the single-sequence template matters) and
// decoder (decoder.h). A component this code does not implement is refused at load with a
// Status naming the file, the field and the value, rather than tokenizing differently from
// Hugging Face. Like transformers, Llama- and Gemma-class tokenizers take BOS/EOS from
// add_bos_token / add_eos_token in tokenizer_config.json.
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
  // Hugging Face's decode: the tokens of the ids through the decoder. Unknown ids are skipped;
  // bytes that do not form UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // decode() of ids that continue a sequence: decoder rules for a sequence's start (Metaspace
  // dropping the first token's "▁", Strip cutting a leading space) do not apply.
  std::string decode_continuation(std::span<const int32_t> ids,
                                  bool skip_special_tokens = false) const;
  // Raw bytes of one token seen mid-sequence (byte-level or <0xNN> bytes decoded, "▁" as a space;
  // added tokens give their content).
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
  std::string decode_tokens(std::vector<std::string> tokens) const;
  std::vector<std::string> tokens_of(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // Constant after load().
  std::unique_ptr<Normalizer> normalizer_;  // nullptr: text as it is
  std::unique_ptr<TokenizerModel> model_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;  // nullptr: each text segment is one word
  std::unique_ptr<Decoder> decoder_;             // nullptr: tokens joined by spaces
  std::unique_ptr<AddedTokenMatcher> added_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // what add_special_tokens puts around the text
  std::vector<std::string> token_text_;           // by id: an added token's content or the vocab's
  std::vector<std::string> token_bytes_;          // by id
  std::vector<uint8_t> special_;                  // by id
  int32_t vocab_size_ = 0;
  std::string bos_token_, eos_token_;
  std::optional<int32_t> bos_id_, eos_id_;
  std::optional<ChatTemplate> chat_template_;
};

// Turns a stream of token ids into text as Hugging Face's DecodeStream does: each push() decodes
// a short window of recent ids with the full decoder and returns what it adds, so a character
// split over byte tokens is held back until complete, and decoders that act at a sequence's start
// (Metaspace, Strip) never leave a stray leading "▁" or space. Unlike DecodeStream, a window
// after the first is decoded as a continuation (decode_continuation), so the pieces always
// concatenate to decode() of all the ids; DecodeStream can lose a space there. finish() flushes
// what is left (an unfinished character becomes U+FFFD, as in decode()). One per stream; not
// thread-safe. The tokenizer must outlive it.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens = false)
      : tok_(tok), skip_special_tokens_(skip_special_tokens) {}

  std::string push(int32_t id);
  std::string finish();

 private:
  std::string window_text() const;

  const Tokenizer& tok_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;  // the window: ids_[0, prefix_index_) are already emitted
  std::string prefix_;        // decode() of ids_[0, prefix_index_)
  size_t prefix_index_ = 0;
  bool mid_sequence_ = false;  // ids before the window were dropped
};

}  // namespace quilt::engine
