// The decoders of Hugging Face tokenizers, each a small class over a list of token strings.
#include "engine/tokenizer/decoder.h"

#include <optional>
#include <utility>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

constexpr std::string_view kMetaspaceReplacement = "\xE2\x96\x81";  // "▁"

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t prev = 0;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, prev)) {
    out.append(s, prev, pos - prev);
    out += to;
    prev = pos + from.size();
  }
  if (prev == 0) return;
  out.append(s, prev, std::string::npos);
  s = std::move(out);
}

// "<0xNN>" (either case of hex digit) as its byte.
std::optional<unsigned char> byte_token(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int hi = hex(token[3]), lo = hex(token[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (std::string& t : tokens) {
      piece(t);
      bytes += t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
  void piece(std::string& token) const override {
    // A token with characters outside the byte-level alphabet (an added token such as
    // "<｜begin▁of▁sentence｜>") stands for its UTF-8 text.
    if (auto bytes = byte_level_to_bytes(token)) token = std::move(*bytes);
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      // The first token loses every replacement character, not only a leading one, exactly as
      // tokenizers' Metaspace decoder does.
      replace_all(tokens[i], replacement_, i == 0 && strip_first_ ? "" : " ");
    }
  }
  void piece(std::string& token) const override { replace_all(token, replacement_, " "); }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) piece(t);
  }
  void piece(std::string& token) const override {
    if (!utf8_is_valid(token)) return;  // a raw byte from an earlier step; nothing to match
    const auto matches = pattern_.find_all(token);
    if (matches.empty()) return;
    std::string out;
    size_t prev = 0;
    for (const auto& [begin, end] : matches) {
      out.append(token, prev, begin - prev);
      out += content_;
      prev = end;
    }
    out.append(token, prev, std::string::npos);
    token = std::move(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (utf8_is_valid(bytes)) {
        out.push_back(bytes);
      } else {
        // The whole run becomes one U+FFFD per byte, as in tokenizers.
        for (size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
    };
    for (std::string& t : tokens) {
      if (auto b = byte_token(t)) {
        bytes.push_back(static_cast<char>(*b));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
  void piece(std::string& token) const override {
    if (auto b = byte_token(token)) token.assign(1, static_cast<char>(*b));
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
  void piece(std::string&) const override {}
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && t.compare(begin, content_.size(), content_) == 0; ++i) {
        begin += content_.size();
      }
      size_t end = t.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         t.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      t = t.substr(begin, end - begin);
    }
  }
  // Strip cuts a sequence's ends (after Fuse), which a token seen mid-sequence is not at.
  void piece(std::string&) const override {}

 private:
  std::string content_;
  size_t start_, stop_;
};

// " ." -> "." and the other English clean-ups of tokenizers' wordpiece::cleanup.
void cleanup(std::string& s) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) replace_all(s, from, to);
}

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i != 0) piece(tokens[i]);
      if (cleanup_) cleanup(tokens[i]);
    }
  }
  void piece(std::string& token) const override {
    if (token.compare(0, prefix_.size(), prefix_) == 0) {
      token.erase(0, prefix_.size());
    } else {
      token.insert(0, " ");
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeDecoder final : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
    }
  }
  void piece(std::string& token) const override { replace_all(token, suffix_, " "); }

 private:
  std::string suffix_;
};

class CtcDecoder final : public Decoder {
 public:
  CtcDecoder(std::string pad, std::string delimiter, bool cleanup)
      : pad_(std::move(pad)), delimiter_(std::move(delimiter)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 && tokens[i] == tokens[i - 1]) continue;  // CTC collapses repeats
      std::string t = tokens[i];
      piece(t);
      if (!t.empty()) out.push_back(std::move(t));
    }
    tokens = std::move(out);
  }
  void piece(std::string& token) const override {
    replace_all(token, pad_, "");
    if (cleanup_) {
      cleanup(token);
      replace_all(token, delimiter_, " ");
    }
  }

 private:
  std::string pad_, delimiter_;
  bool cleanup_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }
  void piece(std::string& token) const override {
    for (const auto& step : steps_) step->piece(token);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

std::string string_or(const json& j, const char* key, std::string fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::move(fallback);
}
bool bool_or(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}
size_t size_or(const json& j, const char* key, size_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<size_t>() : fallback;
}

}  // namespace

Result<std::unique_ptr<Decoder>> Decoder::from_json(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::InvalidArgument(where + ": expected an object with a \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  std::unique_ptr<Decoder> d;
  if (type == "Sequence") {
    auto list = j.find("decoders");
    if (list == j.end() || !list->is_array()) {
      return Status::InvalidArgument(where + ".decoders: expected an array");
    }
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list->size(); ++i) {
      QUILT_ASSIGN_OR_RETURN(auto step,
                             from_json((*list)[i], where + ".decoders[" + std::to_string(i) + "]"));
      steps.push_back(std::move(step));
    }
    d = std::make_unique<SequenceDecoder>(std::move(steps));
  } else if (type == "ByteLevel") {
    d = std::make_unique<ByteLevelDecoder>();
  } else if (type == "Metaspace") {
    std::string scheme = string_or(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = bool_or(j, "add_prefix_space", true) ? "always" : "never";
    if (scheme != "first" && scheme != "always" && scheme != "never") {
      return Status::Unimplemented(where + ".prepend_scheme: unsupported value \"" + scheme + "\"");
    }
    d = std::make_unique<MetaspaceDecoder>(
        string_or(j, "replacement", std::string(kMetaspaceReplacement)), scheme != "never");
  } else if (type == "Replace") {
    QUILT_ASSIGN_OR_RETURN(Regex pattern, regex_from_pattern_json(j, where));
    auto content = j.find("content");
    if (content == j.end() || !content->is_string()) {
      return Status::InvalidArgument(where + ".content: expected a string");
    }
    d = std::make_unique<ReplaceDecoder>(std::move(pattern), content->get<std::string>());
  } else if (type == "ByteFallback") {
    d = std::make_unique<ByteFallbackDecoder>();
  } else if (type == "Fuse") {
    d = std::make_unique<FuseDecoder>();
  } else if (type == "Strip") {
    const std::string content = string_or(j, "content", " ");
    if (utf8_length(content) != 1) {
      return Status::InvalidArgument(where + ".content: expected one character");
    }
    d = std::make_unique<StripDecoder>(content, size_or(j, "start", 0), size_or(j, "stop", 0));
  } else if (type == "WordPiece") {
    d = std::make_unique<WordPieceDecoder>(string_or(j, "prefix", "##"),
                                           bool_or(j, "cleanup", true));
  } else if (type == "BPEDecoder") {
    d = std::make_unique<BpeDecoder>(string_or(j, "suffix", "</w>"));
  } else if (type == "CTC") {
    d = std::make_unique<CtcDecoder>(string_or(j, "pad_token", "<pad>"),
                                     string_or(j, "word_delimiter_token", "|"),
                                     bool_or(j, "cleanup", true));
  } else {
    return Status::Unimplemented(where + ".type: unsupported decoder \"" + type + "\"");
  }
  return d;
}

}  // namespace quilt::engine
