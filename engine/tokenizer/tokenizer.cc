// Encoding, decoding and streaming decode over the loaded tokenizer parts.
#include "engine/tokenizer/tokenizer.h"

#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer_model.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!utf8_is_valid(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + prefix_ids_.size() + suffix_ids_.size() + 1);
  if (add_special_tokens) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
  std::vector<TextSegment> normalized_segments;
  std::vector<PreToken> words;
  for (const TextSegment& segment : added_->split_raw(text)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    const bool at_start = segment.text.data() == text.data();
    std::string normalized(segment.text);
    if (normalizer_) normalizer_->normalize(normalized);
    normalized_segments.clear();
    added_->split_normalized(normalized, &normalized_segments);
    for (const TextSegment& piece : normalized_segments) {
      if (piece.id >= 0) {
        ids.push_back(piece.id);
        continue;
      }
      words.clear();
      words.push_back(
          {std::string(piece.text), at_start && piece.text.data() == normalized.data()});
      if (pre_tokenizer_) pre_tokenizer_->split(words);
      for (const PreToken& word : words) model_->encode_word(word.text, &ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::vector<std::string> Tokenizer::tokens_of(std::span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size() + 1);
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    if (skip_special_tokens && special_[id]) continue;
    tokens.push_back(token_text_[id]);
  }
  return tokens;
}

std::string Tokenizer::decode_tokens(std::vector<std::string> tokens) const {
  std::string text;
  if (decoder_) {
    decoder_->decode_chain(tokens);
    for (const std::string& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) text += ' ';
      text += tokens[i];
    }
  }
  return utf8_is_valid(text) ? text : utf8_lossy(text);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return decode_tokens(tokens_of(ids, skip_special_tokens));
}

std::string Tokenizer::decode_continuation(std::span<const int32_t> ids,
                                           bool skip_special_tokens) const {
  // A plain ASCII token in front takes the sequence-start position (it is its own byte in the
  // byte-level alphabet, no <0xNN> token and no "▁"), and is cut from the text again.
  constexpr char kLead = 'x';
  std::vector<std::string> tokens = tokens_of(ids, skip_special_tokens);
  if (tokens.empty()) return {};
  tokens.insert(tokens.begin(), std::string(1, kLead));
  std::string text = decode_tokens(std::move(tokens));
  if (text.empty() || text[0] != kLead) return decode(ids, skip_special_tokens);
  return text.substr(1);
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return {};
  return token_bytes_[id];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& t : added_->tokens()) {
    if (t.content == token) return t.id;
  }
  return model_->token_to_id(token);
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size_ && special_[id] != 0;
}

Result<std::string> Tokenizer::apply_chat_template(const nlohmann::json& messages,
                                                   bool add_generation_prompt,
                                                   const nlohmann::json& extra_context) const {
  if (!chat_template_) {
    return Status::InvalidArgument("the model has no chat template");
  }
  nlohmann::json context = extra_context.is_object() ? extra_context : nlohmann::json::object();
  if (!context.contains("bos_token")) context["bos_token"] = bos_token_;
  if (!context.contains("eos_token")) context["eos_token"] = eos_token_;
  return chat_template_->render(messages, add_generation_prompt, context);
}

namespace {

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

// What `text` adds after `prefix`; when a decoder rewrote the prefix (it should not), whatever
// follows their common part.
std::string text_after(const std::string& text, const std::string& prefix) {
  if (text.compare(0, prefix.size(), prefix) == 0) return text.substr(prefix.size());
  size_t common = 0;
  while (common < prefix.size() && common < text.size() && text[common] == prefix[common]) {
    ++common;
  }
  while (common > 0 && (static_cast<unsigned char>(text[common]) & 0xC0) == 0x80) --common;
  return text.substr(common);
}

}  // namespace

std::string IncrementalDecoder::window_text() const {
  return mid_sequence_ ? tok_.decode_continuation(ids_, skip_special_tokens_)
                       : tok_.decode(ids_, skip_special_tokens_);
}

std::string IncrementalDecoder::push(int32_t id) {
  if (skip_special_tokens_ && tok_.is_special(id)) return {};
  ids_.push_back(id);
  std::string text = window_text();
  if (text.size() <= prefix_.size() || ends_with_replacement(text)) return {};
  std::string out = text_after(text, prefix_);
  // The next window starts at the ids behind the text just emitted, so decoders that look at
  // neighbours (ByteFallback, Metaspace) see the same context in both decodes.
  mid_sequence_ = mid_sequence_ || prefix_index_ > 0;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = window_text();
  prefix_index_ = ids_.size();
  return out;
}

std::string IncrementalDecoder::finish() {
  std::string out;
  if (prefix_index_ < ids_.size()) {
    const std::string text = window_text();
    if (text.size() > prefix_.size()) out = text_after(text, prefix_);
  }
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  mid_sequence_ = false;
  return out;
}

}  // namespace quilt::engine
