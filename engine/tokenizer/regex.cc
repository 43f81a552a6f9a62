// PCRE2 wrapper: UTF + UCP so that \p{L}, \s and (?i:...) follow Unicode like Oniguruma does in
// Hugging Face's tokenizers; JIT-compiled when the library supports it.
#include "engine/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace quilt::engine {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

struct MatchData {
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* data;
};

// Steps over one UTF-8 character so that an empty match cannot loop forever.
size_t next_char(std::string_view text, size_t pos) {
  ++pos;
  while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
  return pos;
}

}  // namespace

Result<Regex> Regex::compile(std::string_view pattern, bool literal) {
  // PCRE2 refuses UCP together with LITERAL, and a literal pattern needs no character classes.
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return Status::InvalidArgument("regex /" + std::string(pattern) + "/ at offset " +
                                   std::to_string(offset) + ": " +
                                   reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation only: the interpreter gives the same matches when it is unavailable.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return Regex(std::move(holder));
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  MatchData md(code_->code);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc =
        pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.data, nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // The JIT ran out of its stack: the interpreter keeps its backtracking on the heap.
      rc = pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       md.data, nullptr);
    }
    if (rc < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(md.data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      pos = end;
    } else {
      if (begin >= text.size()) break;
      pos = next_char(text, begin);
    }
  }
  return matches;
}

bool Regex::search(std::string_view text) const {
  MatchData md(code_->code);
  return pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                     PCRE2_NO_UTF_CHECK, md.data, nullptr) >= 0;
}

Result<Regex> regex_from_pattern_json(const nlohmann::json& j, const std::string& where) {
  auto pattern = j.find("pattern");
  if (pattern != j.end() && pattern->is_object()) {
    if (auto r = pattern->find("Regex"); r != pattern->end() && r->is_string()) {
      auto compiled = Regex::compile(r->get<std::string>());
      if (!compiled.ok()) return compiled.status().with_context(where + ".pattern.Regex");
      return compiled;
    }
    if (auto s = pattern->find("String"); s != pattern->end() && s->is_string()) {
      auto compiled = Regex::compile(s->get<std::string>(), /*literal=*/true);
      if (!compiled.ok()) return compiled.status().with_context(where + ".pattern.String");
      return compiled;
    }
  }
  return Status::InvalidArgument(where +
                                 ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
}

}  // namespace quilt::engine
