// Jinja lexer: finds the tags, tokenizes their insides, then trims the text between them.
#include "engine/tokenizer/jinja_lexer.h"

#include <algorithm>
#include <cstdint>

#include "engine/tokenizer/utf8.h"

namespace quilt::engine::jinja {
namespace {

enum class TagKind { kVar, kBlock, kComment };

struct Item {
  bool is_text = true;
  size_t begin = 0, end = 0;  // text range, or where the tag starts (for its line)
  TagKind kind = TagKind::kVar;
  char left = 0, right = 0;   // '-', '+' or 0
  bool raw_marker = false;    // {% raw %} / {% endraw %}: whitespace control only
  std::vector<Token> tokens;  // the tag's inside
};

Item text_item(size_t begin, size_t end) {
  Item item;
  item.begin = begin;
  item.end = end;
  return item;
}

// Jinja reads "\r\n" and "\r" as "\n" everywhere in the source (string literals included) and,
// with keep_trailing_newline off as in transformers, drops one newline at the very end.
std::string normalize_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out.push_back(src[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string_view src) : normalized_(normalize_newlines(src)), src_(normalized_) {
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') newlines_.push_back(i);
    }
  }

  Result<std::vector<Token>> run() {
    QUILT_RETURN_IF_ERROR(scan());
    trim_text();
    return emit();
  }

 private:
  int line_of(size_t pos) const {
    return 1 + static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) -
                                newlines_.begin());
  }
  Status error(size_t pos, const std::string& what) const {
    return Status::InvalidArgument("template line " + std::to_string(line_of(pos)) + ": " + what);
  }

  Status scan() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t open = src_.find('{', pos);
      while (open != std::string_view::npos && open + 1 < src_.size() && src_[open + 1] != '{' &&
             src_[open + 1] != '%' && src_[open + 1] != '#') {
        open = src_.find('{', open + 1);
      }
      if (open == std::string_view::npos || open + 1 >= src_.size()) {
        items_.push_back(text_item(pos, src_.size()));
        return Status::OK();
      }
      if (open > pos) items_.push_back(text_item(pos, open));
      QUILT_ASSIGN_OR_RETURN(pos, scan_tag(open));
    }
    return Status::OK();
  }

  // Scans the tag at `open`; returns the position after it.
  Result<size_t> scan_tag(size_t open) {
    Item tag;
    tag.is_text = false;
    tag.begin = open;
    const char second = src_[open + 1];
    tag.kind = second == '{' ? TagKind::kVar : second == '%' ? TagKind::kBlock : TagKind::kComment;
    size_t pos = open + 2;
    if (pos < src_.size() && (src_[pos] == '-' || src_[pos] == '+')) tag.left = src_[pos++];
    if (tag.kind == TagKind::kComment) {
      const size_t close = src_.find("#}", pos);
      if (close == std::string_view::npos) return error(open, "unterminated comment");
      if (close > pos && (src_[close - 1] == '-' || src_[close - 1] == '+')) {
        tag.right = src_[close - 1];
      }
      items_.push_back(std::move(tag));
      return close + 2;
    }
    const std::string_view close = tag.kind == TagKind::kVar ? "}}" : "%}";
    int depth = 0;
    while (true) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
      if (pos >= src_.size()) {
        return error(open, "unterminated '" + std::string(src_.substr(open, 2)) + "' tag");
      }
      if (depth == 0) {
        if (src_.substr(pos, 2) == close) {
          pos += 2;
          break;
        }
        if ((src_[pos] == '-' || src_[pos] == '+') && src_.substr(pos + 1, 2) == close) {
          tag.right = src_[pos];
          pos += 3;
          break;
        }
      }
      QUILT_ASSIGN_OR_RETURN(pos, scan_token(pos, &tag.tokens, &depth));
    }
    const bool raw = tag.kind == TagKind::kBlock && tag.tokens.size() == 1 &&
                     tag.tokens[0].type == TokenType::kName && tag.tokens[0].value == "raw";
    if (!raw) {
      items_.push_back(std::move(tag));
      return pos;
    }
    tag.raw_marker = true;
    items_.push_back(std::move(tag));
    return scan_raw_body(open, pos);
  }

  // Everything up to {% endraw %} is text.
  Result<size_t> scan_raw_body(size_t open, size_t pos) {
    size_t search = pos;
    while (true) {
      const size_t at = src_.find("{%", search);
      if (at == std::string_view::npos) return error(open, "unterminated raw block");
      size_t p = at + 2;
      char left = 0, right = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) left = src_[p++];
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.substr(p, 6) != "endraw") {
        search = at + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) right = src_[p++];
      if (src_.substr(p, 2) != "%}") {
        search = at + 2;
        continue;
      }
      items_.push_back(text_item(pos, at));
      Item end;
      end.is_text = false;
      end.begin = at;
      end.kind = TagKind::kBlock;
      end.left = left;
      end.right = right;
      end.raw_marker = true;
      items_.push_back(std::move(end));
      return p + 2;
    }
  }

  Result<size_t> scan_token(size_t pos, std::vector<Token>* out, int* depth) {
    const int line = line_of(pos);
    const char c = src_[pos];
    if (is_name_start(c)) {
      size_t end = pos + 1;
      while (end < src_.size() && (is_name_start(src_[end]) || is_digit(src_[end]))) ++end;
      out->push_back({TokenType::kName, std::string(src_.substr(pos, end - pos)), line});
      return end;
    }
    if (is_digit(c)) return scan_number(pos, out);
    if (c == '\'' || c == '"') return scan_string(pos, out);
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwo) {
      if (src_.substr(pos, 2) == op) {
        out->push_back({TokenType::kOperator, std::string(op), line});
        return pos + 2;
      }
    }
    static constexpr std::string_view kOne = "+-*/%~<>=()[]{},.:|";
    if (kOne.find(c) == std::string_view::npos) {
      return error(pos, std::string("unexpected character '") + c + "'");
    }
    if (c == '(' || c == '[' || c == '{') ++*depth;
    if ((c == ')' || c == ']' || c == '}') && *depth > 0) --*depth;
    out->push_back({TokenType::kOperator, std::string(1, c), line});
    return pos + 1;
  }

  Result<size_t> scan_number(size_t pos, std::vector<Token>* out) {
    size_t end = pos;
    auto digits = [&] {
      while (end < src_.size() && (is_digit(src_[end]) || src_[end] == '_')) ++end;
    };
    digits();
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && is_digit(src_[end + 1])) {
      is_float = true;
      ++end;
      digits();
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t e = end + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && is_digit(src_[e])) {
        is_float = true;
        end = e;
        digits();
      }
    }
    std::string text;
    for (char ch : src_.substr(pos, end - pos)) {
      if (ch != '_') text.push_back(ch);
    }
    out->push_back({is_float ? TokenType::kFloat : TokenType::kInt, text, line_of(pos)});
    return end;
  }

  // Python string-literal escapes, as Jinja decodes them.
  Result<size_t> scan_string(size_t pos, std::vector<Token>* out) {
    const char quote = src_[pos];
    std::string value;
    size_t p = pos + 1;
    while (true) {
      if (p >= src_.size()) return error(pos, "unterminated string");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\' || p + 1 >= src_.size()) {
        value.push_back(c);
        ++p;
        continue;
      }
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n':
          value.push_back('\n');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case '0':
          value.push_back('\0');
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + n > src_.size())
            return error(pos, "truncated \\" + std::string(1, e) + " escape");
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            const char h = src_[p + i];
            const int d = is_digit(h)              ? h - '0'
                          : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                          : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                   : -1;
            if (d < 0) return error(pos, "bad \\" + std::string(1, e) + " escape");
            cp = cp * 16 + static_cast<uint32_t>(d);
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacementChar;
          utf8_append(value, cp);
          p += n;
          break;
        }
        default:  // unknown escapes stay as written, like Python
          value.push_back('\\');
          value.push_back(e);
      }
    }
    out->push_back({TokenType::kString, std::move(value), line_of(pos)});
    return p + 1;
  }

  // Applies -/+ markers, trim_blocks and lstrip_blocks to the text items.
  void trim_text() {
    for (size_t i = 0; i < items_.size(); ++i) {
      Item& text = items_[i];
      if (!text.is_text) continue;
      const Item* prev = i > 0 ? &items_[i - 1] : nullptr;
      const Item* next = i + 1 < items_.size() ? &items_[i + 1] : nullptr;
      size_t start = text.begin, end = text.end;
      if (prev != nullptr) {
        if (prev->right == '-') {
          while (start < end && is_space(src_[start])) ++start;
        } else if (prev->kind != TagKind::kVar && prev->right != '+') {
          if (src_.substr(start, 1) == "\n") start += 1;
        }
        start = std::min(start, end);
      }
      if (next != nullptr) {
        if (next->left == '-') {
          while (end > start && is_space(src_[end - 1])) --end;
        } else if (next->kind != TagKind::kVar && next->left != '+') {
          size_t line_begin = start;
          bool at_line_start = start == 0 || src_[start - 1] == '\n';
          for (size_t p = end; p > start; --p) {
            if (src_[p - 1] == '\n') {
              line_begin = p;
              at_line_start = true;
              break;
            }
          }
          bool blank = true;
          for (size_t p = line_begin; p < end && blank; ++p) {
            blank = src_[p] == ' ' || src_[p] == '\t';
          }
          if (at_line_start && blank) end = line_begin;
        }
      }
      text.begin = start;
      text.end = end;
    }
  }

  std::vector<Token> emit() {
    std::vector<Token> out;
    for (Item& item : items_) {
      if (item.is_text) {
        if (item.end > item.begin) {
          out.push_back({TokenType::kText,
                         std::string(src_.substr(item.begin, item.end - item.begin)),
                         line_of(item.begin)});
        }
        continue;
      }
      if (item.kind == TagKind::kComment || item.raw_marker) continue;
      const int line = line_of(item.begin);
      const bool var = item.kind == TagKind::kVar;
      out.push_back({var ? TokenType::kVarBegin : TokenType::kBlockBegin, "", line});
      for (Token& t : item.tokens) out.push_back(std::move(t));
      out.push_back({var ? TokenType::kVarEnd : TokenType::kBlockEnd, "", line});
    }
    out.push_back({TokenType::kEnd, "", line_of(src_.size())});
    return out;
  }

  std::string normalized_;
  std::string_view src_;  // views normalized_
  std::vector<size_t> newlines_;
  std::vector<Item> items_;
};

}  // namespace

Result<std::vector<Token>> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace quilt::engine::jinja
