// A model's chat template: a Jinja2 subset rendered the way transformers' apply_chat_template does.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace quilt::engine {

namespace jinja {
struct Template;
}

// Supported: {{ }}, {% %}, {# #}, -/+ whitespace control with trim_blocks and lstrip_blocks on,
// if/elif/else, for (loop.*, inline if, else), set (also namespace attributes and blocks),
// macro, break/continue, filter blocks, raw, generation; Python-like expressions, the common
// filters, tests and str/dict methods; raise_exception, strftime_now, range, namespace, dict.
// Not supported: extends/include/import, call blocks, recursive loops, str % formatting.
//
// Copies share the parsed template. render() is const and thread-safe.
class ChatTemplate {
 public:
  // Syntax errors are InvalidArgument naming the template line.
  static Result<ChatTemplate> parse(std::string source);

  // messages: a JSON array of {"role", "content", ...}; extra_context adds variables (bos_token,
  // eos_token, tools, date_string, ...). As in transformers, `tools` and `documents` are none
  // unless given. raise_exception() in the template and every evaluation error come back as
  // InvalidArgument; the template's own raise_exception message is kept as written.
  //
  // JSON objects reach the template with nlohmann::json's key order (sorted), which tojson then
  // prints; Python would keep the caller's order.
  Result<std::string> render(const nlohmann::json& messages, bool add_generation_prompt,
                             const nlohmann::json& extra_context = nlohmann::json::object()) const;

  const std::string& source() const { return *source_; }

 private:
  ChatTemplate(std::shared_ptr<const std::string> source,
               std::shared_ptr<const jinja::Template> tmpl)
      : source_(std::move(source)), template_(std::move(tmpl)) {}

  std::shared_ptr<const std::string> source_;
  std::shared_ptr<const jinja::Template> template_;
};

}  // namespace quilt::engine
