// Encoding, decoding and streaming decode over the loaded tokenizer parts.
#include "engine/tokenizer/tokenizer.h"

#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/pre_tokenizer.h"
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
  std::vector<std::string> words;
  for (const TextSegment& segment : added_->split(text)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    words.clear();
    words.emplace_back(segment.text);
    if (pre_tokenizer_) pre_tokenizer_->split(words);
    for (const std::string& word : words) model_->encode_word(word, &ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) continue;
    if (skip_special_tokens && special_[id]) continue;
    bytes += token_bytes_[id];
  }
  return utf8_lossy(bytes);
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

std::string IncrementalDecoder::push(int32_t id) {
  if (skip_special_tokens_ && tok_.is_special(id)) return {};
  pending_ += tok_.token_bytes(id);
  const size_t ready = utf8_complete_prefix(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string IncrementalDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace quilt::engine
