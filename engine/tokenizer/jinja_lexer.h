// Tokenizer of Jinja template source, with Hugging Face's whitespace settings applied.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quilt::engine::jinja {

enum class TokenType {
  kText,        // literal template text (whitespace control already applied)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // value holds the unescaped text
  kInt,
  kFloat,
  kOperator,  // + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
  kEnd,
};

struct Token {
  TokenType type;
  std::string value;
  int line = 1;
};

// Splits `source` into tokens. Comments are dropped; {% raw %} bodies become text. Whitespace
// control follows Jinja with trim_blocks=True and lstrip_blocks=True (what transformers uses):
// `-` strips all whitespace on that side, `+` disables trim/lstrip for that side.
Result<std::vector<Token>> tokenize(std::string_view source);

}  // namespace quilt::engine::jinja
