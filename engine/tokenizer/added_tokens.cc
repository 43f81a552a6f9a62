// Leftmost-longest matching of added tokens with lstrip / rstrip / single_word handling.
#include "engine/tokenizer/added_tokens.h"

#include <algorithm>

#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

// The character starting at or ending before a byte offset.
uint32_t char_at(std::string_view text, size_t pos) {
  uint32_t cp = 0;
  return utf8_decode(text, pos, &cp) ? cp : 0;
}
size_t char_start_before(std::string_view text, size_t pos) {
  size_t p = pos - 1;
  while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  return p;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  bool any_single_word = false;
  patterns_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    patterns_.push_back(t.content);
    if (t.normalized && normalizer != nullptr) normalizer->normalize(patterns_.back());
    if (patterns_.back().empty()) continue;
    Pass& pass = t.normalized ? normalized_pass_ : raw_pass_;
    pass.by_first_byte[static_cast<unsigned char>(patterns_.back()[0])].push_back(i);
    pass.empty = false;
    any_single_word = any_single_word || t.single_word;
  }
  for (Pass* pass : {&raw_pass_, &normalized_pass_}) {
    for (auto& list : pass->by_first_byte) {
      std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) {
        return patterns_[a].size() > patterns_[b].size();
      });
    }
  }
  if (any_single_word) {
    // Rust regex's \w, which Hugging Face uses for the word-boundary test.
    starts_with_word_ = std::move(Regex::compile(R"(^\w)")).value();
    ends_with_word_ = std::move(Regex::compile(R"(\w$)")).value();
  }
}

bool AddedTokenMatcher::word_boundary_ok(std::string_view text, size_t begin, size_t end) const {
  const bool start_ok = begin == 0 || !ends_with_word_->search(text.substr(0, begin));
  const bool stop_ok = end == text.size() || !starts_with_word_->search(text.substr(end));
  return start_ok && stop_ok;
}

void AddedTokenMatcher::split_pass(const Pass& pass, std::string_view text,
                                   std::vector<TextSegment>* out) const {
  size_t segment_start = 0;  // start of the text not yet emitted
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = pass.by_first_byte[static_cast<unsigned char>(text[pos])];
    const AddedToken* found = nullptr;
    size_t found_size = 0;
    for (size_t index : candidates) {
      if (text.compare(pos, patterns_[index].size(), patterns_[index]) == 0) {
        found = &tokens_[index];
        found_size = patterns_[index].size();
        break;
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t begin = pos;
    size_t end = pos + found_size;
    if (found->single_word && !word_boundary_ok(text, begin, end)) {
      pos = end;  // like Aho-Corasick's iterator, the search resumes after the rejected match
      continue;
    }
    if (found->lstrip) {
      while (begin > segment_start) {
        const size_t p = char_start_before(text, begin);
        if (!is_unicode_whitespace(char_at(text, p))) break;
        begin = p;
      }
    }
    if (found->rstrip) {
      while (end < text.size()) {
        uint32_t cp = 0;
        const size_t n = utf8_decode(text, end, &cp);
        if (n == 0 || !is_unicode_whitespace(cp)) break;
        end += n;
      }
    }
    if (begin > segment_start) out->push_back({text.substr(segment_start, begin - segment_start)});
    out->push_back({text.substr(begin, end - begin), found->id});
    segment_start = pos = end;
  }
  if (segment_start < text.size()) out->push_back({text.substr(segment_start)});
}

std::vector<TextSegment> AddedTokenMatcher::split_raw(std::string_view text) const {
  std::vector<TextSegment> out;
  if (raw_pass_.empty) {
    if (!text.empty()) out.push_back({text});
  } else {
    split_pass(raw_pass_, text, &out);
  }
  return out;
}

void AddedTokenMatcher::split_normalized(std::string_view text,
                                         std::vector<TextSegment>* out) const {
  if (normalized_pass_.empty) {
    if (!text.empty()) out->push_back({text});
  } else {
    split_pass(normalized_pass_, text, out);
  }
}

}  // namespace quilt::engine
