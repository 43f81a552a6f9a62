// The BPE model of tokenizer.json: vocabulary, ranked merges, and a cache of encoded words.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer/tokenizer_model.h"

namespace quilt::engine {

// byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix, unk_token and
// fuse_unk as Hugging Face applies them; dropout is ignored (it only applies in training).
class BpeModel final : public TokenizerModel {
 public:
  // Parses the "model" object (type "BPE"); merges may be "a b" strings or ["a", "b"] pairs.
  static Result<std::unique_ptr<BpeModel>> from_json(const nlohmann::json& model,
                                                     const std::string& where);

  void encode_word(std::string_view word, std::vector<int32_t>* out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* id_to_token(int32_t id) const override;
  int32_t max_id() const override { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view word, std::vector<int32_t>* out) const;
  void initial_symbols(std::string_view word, std::vector<int32_t>* ids,
                       std::vector<uint32_t>* lengths) const;

  // Constant after construction.
  TokenMap vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix: on every symbol but a word's first
  std::string suffix_;  // end_of_word_suffix: on a word's last symbol
  std::array<int32_t, 256> byte_fallback_ids_{};  // "<0xAB>" tokens, -1 where absent

  // Words seen before, sharded to keep lock contention low when many threads encode.
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheShardCapacity = 8192;
  static constexpr size_t kMaxCachedWordBytes = 64;
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>
        words;  // guarded by mutex
  };
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace quilt::engine
