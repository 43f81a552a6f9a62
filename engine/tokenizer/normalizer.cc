// The normalizers of Hugging Face tokenizers, each a small class over a UTF-8 string.
#include "engine/tokenizer/normalizer.h"

#include <utility>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/precompiled_charsmap.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/unicode_class.h"
#include "engine/tokenizer/utf8.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

// Calls fn(code point) for each character of valid UTF-8 `text`.
template <typename Fn>
void for_each_char(std::string_view text, Fn&& fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = kReplacementChar;
    size_t n = utf8_decode(text, pos, &cp);
    if (n == 0) n = 1;
    fn(cp);
    pos += n;
  }
}

class FormNormalizer final : public Normalizer {
 public:
  explicit FormNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override {
    bool ascii = true;
    for (unsigned char c : text) ascii = ascii && c < 0x80;
    if (!ascii) text = unicode_normalize(text, form_);  // ASCII is in every form already
  }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for_each_char(text, [&](uint32_t cp) { append_lowercase(out, cp); });
    text = std::move(out);
  }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    const std::vector<uint32_t> cps = utf8_to_code_points(text);
    size_t begin = 0, end = cps.size();
    if (left_) {
      while (begin < end && is_unicode_whitespace(cps[begin])) ++begin;
    }
    if (right_) {
      while (end > begin && is_unicode_whitespace(cps[end - 1])) --end;
    }
    if (begin != 0 || end != cps.size()) text = code_points_to_utf8(cps, begin, end);
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for_each_char(text, [&](uint32_t cp) {
      if (!is_combining_mark(cp)) utf8_append(out, cp);
    });
    text = std::move(out);
  }
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    const auto matches = pattern_.find_all(text);
    if (matches.empty()) return;
    std::string out;
    size_t prev = 0;
    for (const auto& [begin, end] : matches) {
      out.append(text, prev, begin - prev);
      out += content_;
      prev = end;
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

// SentencePiece's "nmt_nfkc" clean-up: drops control characters, maps odd spaces to " ".
class NmtNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for_each_char(text, [&](uint32_t c) {
      if ((c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || c == 0x8F ||
          c == 0x9F) {
        return;
      }
      if (c == 0x9 || c == 0xA || c == 0xC || c == 0xD || c == 0x1680 ||
          (c >= 0x200B && c <= 0x200F) || c == 0x2028 || c == 0x2029 || c == 0x2581 ||
          c == 0xFEFF || c == 0xFFFD) {
        c = ' ';
      }
      utf8_append(out, c);
    });
    text = std::move(out);
  }
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = bytes_to_byte_level(text); }
};

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_(chinese),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for_each_char(text, [&](uint32_t c) {
      if (clean_text_) {
        if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && is_other_category(c)))
          return;
        if (is_unicode_whitespace(c)) c = ' ';
      }
      if (chinese_ && is_chinese_char(c)) {
        out += ' ';
        utf8_append(out, c);
        out += ' ';
        return;
      }
      utf8_append(out, c);
    });
    text = std::move(out);
    if (strip_accents_) {
      text = unicode_normalize(text, NormalForm::kNfd);
      StripAccentsNormalizer().normalize(text);
    }
    if (lowercase_) LowercaseNormalizer().normalize(text);
  }

 private:
  static bool is_chinese_char(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
  }
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class PrecompiledNormalizer final : public Normalizer {
 public:
  explicit PrecompiledNormalizer(PrecompiledCharsmap map) : map_(std::move(map)) {}
  void normalize(std::string& text) const override { text = map_.normalize(text); }

 private:
  PrecompiledCharsmap map_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

bool bool_field(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

Result<std::string> string_field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return Status::InvalidArgument(where + "." + key + ": expected a string");
  }
  return it->get<std::string>();
}

}  // namespace

Result<std::unique_ptr<Normalizer>> Normalizer::from_json(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::InvalidArgument(where + ": expected an object with a \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  std::unique_ptr<Normalizer> n;
  if (type == "Sequence") {
    auto list = j.find("normalizers");
    if (list == j.end() || !list->is_array()) {
      return Status::InvalidArgument(where + ".normalizers: expected an array");
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list->size(); ++i) {
      QUILT_ASSIGN_OR_RETURN(
          auto step, from_json((*list)[i], where + ".normalizers[" + std::to_string(i) + "]"));
      steps.push_back(std::move(step));
    }
    n = std::make_unique<SequenceNormalizer>(std::move(steps));
  } else if (type == "NFC") {
    n = std::make_unique<FormNormalizer>(NormalForm::kNfc);
  } else if (type == "NFD") {
    n = std::make_unique<FormNormalizer>(NormalForm::kNfd);
  } else if (type == "NFKC") {
    n = std::make_unique<FormNormalizer>(NormalForm::kNfkc);
  } else if (type == "NFKD") {
    n = std::make_unique<FormNormalizer>(NormalForm::kNfkd);
  } else if (type == "Lowercase") {
    n = std::make_unique<LowercaseNormalizer>();
  } else if (type == "Strip") {
    n = std::make_unique<StripNormalizer>(bool_field(j, "strip_left", true),
                                          bool_field(j, "strip_right", true));
  } else if (type == "StripAccents") {
    n = std::make_unique<StripAccentsNormalizer>();
  } else if (type == "Prepend") {
    QUILT_ASSIGN_OR_RETURN(std::string prefix, string_field(j, "prepend", where));
    n = std::make_unique<PrependNormalizer>(std::move(prefix));
  } else if (type == "Replace") {
    QUILT_ASSIGN_OR_RETURN(Regex pattern, regex_from_pattern_json(j, where));
    QUILT_ASSIGN_OR_RETURN(std::string content, string_field(j, "content", where));
    n = std::make_unique<ReplaceNormalizer>(std::move(pattern), std::move(content));
  } else if (type == "Nmt") {
    n = std::make_unique<NmtNormalizer>();
  } else if (type == "ByteLevel") {
    n = std::make_unique<ByteLevelNormalizer>();
  } else if (type == "BertNormalizer") {
    const bool lowercase = bool_field(j, "lowercase", true);
    // strip_accents null means "whatever lowercase is", as in Hugging Face.
    n = std::make_unique<BertNormalizer>(bool_field(j, "clean_text", true),
                                         bool_field(j, "handle_chinese_chars", true),
                                         bool_field(j, "strip_accents", lowercase), lowercase);
  } else if (type == "Precompiled") {
    auto map = j.find("precompiled_charsmap");
    if (map == j.end() || map->is_null()) {
      // An empty charsmap leaves text as it is (tokenizers does the same).
      n = std::make_unique<SequenceNormalizer>(std::vector<std::unique_ptr<Normalizer>>());
    } else {
      if (!map->is_string()) {
        return Status::InvalidArgument(where + ".precompiled_charsmap: expected a base64 string");
      }
      auto parsed = PrecompiledCharsmap::from_base64(map->get<std::string>());
      if (!parsed.ok()) return parsed.status().with_context(where + ".precompiled_charsmap");
      n = std::make_unique<PrecompiledNormalizer>(std::move(parsed).value());
    }
  } else {
    return Status::Unimplemented(where + ".type: unsupported normalizer \"" + type + "\"");
  }
  return n;
}

}  // namespace quilt::engine
