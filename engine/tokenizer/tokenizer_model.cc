// TokenizerModel::from_json, and the WordPiece and Unigram models of Hugging Face tokenizers.
#include "engine/tokenizer/tokenizer_model.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

// Greedy longest-match-first over the vocabulary; a word with any unmatched part is one unk.
class WordPieceModel final : public TokenizerModel {
 public:
  static Result<std::unique_ptr<TokenizerModel>> from_json(const json& model,
                                                           const std::string& where) {
    auto wp = std::make_unique<WordPieceModel>();
    auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_object()) {
      return Status::InvalidArgument(where + ".vocab: expected an object of token -> id");
    }
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
          it.value().get<int64_t>() > (1 << 30)) {
        return Status::InvalidArgument(where + ".vocab[\"" + it.key() + "\"]: expected an id");
      }
      const auto id = it.value().get<int32_t>();
      wp->vocab_.emplace(it.key(), id);
      if (static_cast<size_t>(id) >= wp->id_to_token_.size()) wp->id_to_token_.resize(id + 1);
      wp->id_to_token_[id] = it.key();
    }
    const std::string unk = model.value("unk_token", std::string("[UNK]"));
    auto u = wp->vocab_.find(unk);
    if (u == wp->vocab_.end()) {
      return Status::InvalidArgument(where + ".unk_token: \"" + unk +
                                     "\" is not in the vocabulary");
    }
    wp->unk_id_ = u->second;
    if (auto p = model.find("continuing_subword_prefix"); p != model.end() && p->is_string()) {
      wp->prefix_ = p->get<std::string>();
    }
    if (auto m = model.find("max_input_chars_per_word"); m != model.end() && m->is_number()) {
      wp->max_chars_ = m->get<size_t>();
    }
    return std::unique_ptr<TokenizerModel>(std::move(wp));
  }

  void encode_word(std::string_view word, std::vector<int32_t>* out) const override {
    if (utf8_length(word) > max_chars_) {
      out->push_back(unk_id_);
      return;
    }
    const size_t mark = out->size();
    std::string candidate;
    size_t start = 0;
    while (start < word.size()) {
      size_t end = word.size();
      bool found = false;
      while (start < end) {
        candidate.assign(start > 0 ? prefix_ : std::string());
        candidate.append(word.substr(start, end - start));
        if (auto it = vocab_.find(candidate); it != vocab_.end()) {
          out->push_back(it->second);
          found = true;
          break;
        }
        do {
          --end;
        } while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
      }
      if (!found) {
        out->resize(mark);
        out->push_back(unk_id_);
        return;
      }
      start = end;
    }
  }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
    return id_to_token_[id].empty() ? nullptr : &id_to_token_[id];
  }
  int32_t max_id() const override { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  TokenMap vocab_;
  std::vector<std::string> id_to_token_;
  int32_t unk_id_ = 0;
  std::string prefix_ = "##";
  size_t max_chars_ = 100;
};

// Viterbi over the pieces' log-probabilities, as tokenizers' encode_optimized: unknown characters
// score min_score - 10, consecutive unknowns fuse into one unk, byte_fallback spells them in
// <0xNN> tokens instead.
class UnigramModel final : public TokenizerModel {
 public:
  static Result<std::unique_ptr<TokenizerModel>> from_json(const json& model,
                                                           const std::string& where) {
    auto ug = std::make_unique<UnigramModel>();
    auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_array()) {
      return Status::InvalidArgument(where + ".vocab: expected an array of [piece, score]");
    }
    for (size_t i = 0; i < vocab->size(); ++i) {
      const json& e = (*vocab)[i];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
        return Status::InvalidArgument(where + ".vocab[" + std::to_string(i) +
                                       "]: expected [piece, score]");
      }
      const std::string piece = e[0].get<std::string>();
      ug->vocab_.emplace(piece, static_cast<int32_t>(i));
      ug->pieces_.push_back(piece);
      ug->scores_.push_back(e[1].get<double>());
      ug->min_score_ = std::min(ug->min_score_, ug->scores_.back());
      ug->max_piece_bytes_ = std::max(ug->max_piece_bytes_, piece.size());
    }
    if (auto u = model.find("unk_id"); u != model.end() && u->is_number_integer()) {
      const auto id = u->get<int64_t>();
      if (id < 0 || static_cast<size_t>(id) >= ug->pieces_.size()) {
        return Status::InvalidArgument(where + ".unk_id: out of the vocabulary");
      }
      ug->unk_id_ = static_cast<int32_t>(id);
    }
    if (auto b = model.find("byte_fallback"); b != model.end() && b->is_boolean()) {
      ug->byte_fallback_ = b->get<bool>();
    }
    return std::unique_ptr<TokenizerModel>(std::move(ug));
  }

  void encode_word(std::string_view word, std::vector<int32_t>* out) const override {
    if (word.empty()) return;
    struct Node {
      int32_t id = -1;
      double score = 0;
      long starts_at = -1;
    };
    constexpr double kUnkPenalty = 10.0;
    const double unk_score = min_score_ - kUnkPenalty;
    std::vector<Node> best(word.size() + 1);
    size_t start = 0;
    while (start < word.size()) {
      const double here = best[start].score;
      uint32_t cp = 0;
      size_t char_len = utf8_decode(word, start, &cp);
      if (char_len == 0) char_len = 1;
      bool single = false;
      for (size_t end = start + char_len; end <= word.size() && end - start <= max_piece_bytes_;) {
        if (auto it = vocab_.find(word.substr(start, end - start)); it != vocab_.end()) {
          Node& target = best[end];
          const double candidate = scores_[it->second] + here;
          if (target.starts_at < 0 || candidate > target.score) {
            target = {it->second, candidate, static_cast<long>(start)};
          }
          single = single || end - start == char_len;
        }
        if (end == word.size()) break;
        size_t n = utf8_decode(word, end, &cp);
        end += n == 0 ? 1 : n;
      }
      if (!single) {
        Node& target = best[start + char_len];
        const double candidate = unk_score + here;
        if (target.starts_at < 0 || candidate > target.score) {
          target = {unk_id_.value_or(-1), candidate, static_cast<long>(start)};
        }
      }
      start += char_len;
    }
    // Back from the end: pieces in reverse, runs of unknowns fused.
    std::vector<std::string_view> pieces;
    size_t end = word.size();
    size_t unk_begin = std::string_view::npos, unk_end = 0;
    while (end > 0) {
      const Node& node = best[end];
      const auto begin = static_cast<size_t>(node.starts_at);
      if (unk_id_ && node.id == *unk_id_) {
        if (unk_begin == std::string_view::npos) unk_end = end;
        unk_begin = begin;
      } else {
        if (unk_begin != std::string_view::npos) {
          pieces.push_back(word.substr(unk_begin, unk_end - unk_begin));
          unk_begin = std::string_view::npos;
        }
        pieces.push_back(word.substr(begin, end - begin));
      }
      end = begin;
    }
    if (unk_begin != std::string_view::npos) {
      pieces.push_back(word.substr(unk_begin, unk_end - unk_begin));
    }
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) emit(*it, out);
  }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* id_to_token(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return nullptr;
    return &pieces_[id];
  }
  int32_t max_id() const override { return static_cast<int32_t>(pieces_.size()) - 1; }

 private:
  void emit(std::string_view piece, std::vector<int32_t>* out) const {
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char b : piece) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        auto it = vocab_.find(std::string_view(name));
        if (it == vocab_.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == piece.size()) {
        out->insert(out->end(), bytes.begin(), bytes.end());
        return;
      }
    }
    if (unk_id_) out->push_back(*unk_id_);
  }

  TokenMap vocab_;
  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  double min_score_ = std::numeric_limits<double>::max();
  size_t max_piece_bytes_ = 0;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
};

}  // namespace

Result<std::unique_ptr<TokenizerModel>> TokenizerModel::from_json(const json& model,
                                                                  const std::string& where) {
  if (!model.is_object()) return Status::InvalidArgument(where + ": expected an object");
  const std::string type = model.value("type", std::string("BPE"));
  if (type == "BPE") {
    QUILT_ASSIGN_OR_RETURN(auto bpe, BpeModel::from_json(model, where));
    return std::unique_ptr<TokenizerModel>(std::move(bpe));
  }
  if (type == "WordPiece") return WordPieceModel::from_json(model, where);
  if (type == "Unigram") return UnigramModel::from_json(model, where);
  return Status::Unimplemented(where + ".type: unsupported model \"" + type +
                               "\" (BPE, WordPiece and Unigram are supported)");
}

}  // namespace quilt::engine
