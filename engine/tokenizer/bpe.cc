// BPE word encoding with the merge order of Hugging Face tokenizers (lowest rank first, leftmost
// among equal ranks), driven by a heap so long words stay O(n log n).
#include "engine/tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

bool nonempty_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() && !it->get<std::string>().empty();
}

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::from_json(const nlohmann::json& model,
                                                      const std::string& where) {
  if (!model.is_object()) return Status::InvalidArgument(where + ": expected an object");
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    return Status::InvalidArgument(where + ".vocab: expected an object of token -> id");
  }
  auto bpe = std::unique_ptr<BpeModel>(new BpeModel());
  if (nonempty_string(model, "continuing_subword_prefix")) {
    bpe->prefix_ = model["continuing_subword_prefix"].get<std::string>();
  }
  if (nonempty_string(model, "end_of_word_suffix")) {
    bpe->suffix_ = model["end_of_word_suffix"].get<std::string>();
  }
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 30)) {
      return Status::InvalidArgument(where + ".vocab[\"" + it.key() + "\"]: expected an id");
    }
    const auto id = it.value().get<int32_t>();
    bpe->vocab_.emplace(it.key(), id);
    if (static_cast<size_t>(id) >= bpe->id_to_token_.size()) bpe->id_to_token_.resize(id + 1);
    bpe->id_to_token_[id] = it.key();
  }

  auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    return Status::InvalidArgument(where + ".merges: expected an array");
  }
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const auto& m = (*merges)[rank];
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos) {
        return Status::InvalidArgument(where + ".merges[" + std::to_string(rank) +
                                       "]: expected \"a b\"");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Status::InvalidArgument(where + ".merges[" + std::to_string(rank) +
                                     "]: expected \"a b\" or [\"a\", \"b\"]");
    }
    // The right part loses its continuing_subword_prefix in the merged token, as in tokenizers.
    auto l = bpe->vocab_.find(left), r = bpe->vocab_.find(right),
         merged =
             bpe->vocab_.find(left + right.substr(std::min(bpe->prefix_.size(), right.size())));
    if (l == bpe->vocab_.end() || r == bpe->vocab_.end() || merged == bpe->vocab_.end()) {
      return Status::InvalidArgument(where + ".merges[" + std::to_string(rank) + "]: \"" + left +
                                     " " + right + "\" uses tokens missing from the vocabulary");
    }
    // A later duplicate of a pair never fires in Hugging Face either: keep the first rank.
    bpe->merges_.emplace(pair_key(l->second, r->second),
                         Merge{static_cast<int32_t>(rank), merged->second});
  }

  if (auto unk = model.find("unk_token"); unk != model.end() && unk->is_string()) {
    auto it = bpe->vocab_.find(unk->get<std::string>());
    if (it == bpe->vocab_.end()) {
      return Status::InvalidArgument(where + ".unk_token: not in the vocabulary");
    }
    bpe->unk_id_ = it->second;
  }
  auto flag = [&](const char* key) {
    auto it = model.find(key);
    return it != model.end() && it->is_boolean() && it->get<bool>();
  };
  bpe->fuse_unk_ = flag("fuse_unk");
  bpe->byte_fallback_ = flag("byte_fallback");
  bpe->ignore_merges_ = flag("ignore_merges");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = bpe->vocab_.find(std::string_view(name));
    bpe->byte_fallback_ids_[b] = it == bpe->vocab_.end() ? -1 : it->second;
  }
  return bpe;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  const std::string& t = id_to_token_[id];
  return t.empty() ? nullptr : &t;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>* ids,
                               std::vector<uint32_t>* lengths) const {
  bool last_was_unk = false;
  size_t pos = 0;
  std::string affixed;
  while (pos < word.size()) {
    uint32_t cp = 0;
    size_t n = utf8_decode(word, pos, &cp);
    if (n == 0) n = 1;  // words come from valid UTF-8; this only guards against surprises
    std::string_view ch = word.substr(pos, n);
    const bool first = pos == 0;
    pos += n;
    if ((!first && !prefix_.empty()) || (pos == word.size() && !suffix_.empty())) {
      affixed.assign(first ? std::string_view() : std::string_view(prefix_));
      affixed += ch;
      if (pos == word.size()) affixed += suffix_;
      ch = affixed;
    }
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      ids->push_back(it->second);
      lengths->push_back(static_cast<uint32_t>(n));
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch) all = all && byte_fallback_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : ch) {
          ids->push_back(byte_fallback_ids_[b]);
          lengths->push_back(1);
        }
        last_was_unk = false;
        continue;
      }
    }
    // Without an unk token Hugging Face drops the character.
    if (!unk_id_) continue;
    if (fuse_unk_ && last_was_unk) {
      lengths->back() += static_cast<uint32_t>(n);
    } else {
      ids->push_back(*unk_id_);
      lengths->push_back(static_cast<uint32_t>(n));
    }
    last_was_unk = true;
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> ids;
  std::vector<uint32_t> lengths;
  initial_symbols(word, &ids, &lengths);
  const int n = static_cast<int>(ids.size());
  if (n <= 1) {
    out->insert(out->end(), ids.begin(), ids.end());
    return;
  }
  // A doubly linked list over the symbols; merged-away symbols get length 0.
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push_pair = [&](int left) {
    const int right = next[left];
    if (left < 0 || right < 0) return;
    auto it = merges_.find(pair_key(ids[left], ids[right]));
    if (it != merges_.end()) heap.push({it->second.rank, left, it->second.id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const int left = top.pos;
    if (lengths[left] == 0 || next[left] < 0) continue;
    const int right = next[left];
    auto it = merges_.find(pair_key(ids[left], ids[right]));
    if (it == merges_.end() || it->second.id != top.id) continue;  // stale candidate
    ids[left] = top.id;
    lengths[left] += lengths[right];
    lengths[right] = 0;
    next[left] = next[right];
    if (next[left] >= 0) prev[next[left]] = left;
    if (prev[left] >= 0) push_pair(prev[left]);
    push_pair(left);
  }
  for (int i = 0; i >= 0; i = next[i]) out->push_back(ids[i]);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.size() > kMaxCachedWordBytes) {
    merge_word(word, out);
    return;
  }
  CacheShard& shard = cache_[StringHash{}(word) % kCacheShards];
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (auto it = shard.words.find(word); it != shard.words.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(shard.mutex);
  // Dropping the whole shard when full is crude but keeps memory bounded without LRU bookkeeping.
  if (shard.words.size() >= kCacheShardCapacity) shard.words.clear();
  shard.words.emplace(std::string(word), std::move(ids));
}

}  // namespace quilt::engine
