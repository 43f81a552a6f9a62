// ChatTemplate: parse once, render per request with the variables transformers passes.
#include "engine/tokenizer/chat_template.h"

#include <utility>
#include <vector>

#include "engine/tokenizer/jinja_ast.h"
#include "engine/tokenizer/jinja_interpreter.h"
#include "engine/tokenizer/jinja_parser.h"

namespace quilt::engine {
namespace {

// Template values are built and printed recursively; deeper JSON is refused up front so that a
// hostile request cannot exhaust the stack. Checked without recursion.
constexpr int kMaxJsonDepth = 128;

bool too_deep(const nlohmann::json& root) {
  std::vector<std::pair<const nlohmann::json*, int>> stack = {{&root, 0}};
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    if (depth > kMaxJsonDepth) return true;
    if (!node->is_structured()) continue;
    for (const nlohmann::json& child : *node) stack.emplace_back(&child, depth + 1);
  }
  return false;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string source) {
  auto text = std::make_shared<const std::string>(std::move(source));
  QUILT_ASSIGN_OR_RETURN(std::shared_ptr<const jinja::Template> tmpl, jinja::parse_template(*text));
  return ChatTemplate(std::move(text), std::move(tmpl));
}

Result<std::string> ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                         const nlohmann::json& extra_context) const {
  if (!messages.is_array()) return Status::InvalidArgument("messages must be a JSON array");
  if (!extra_context.is_null() && !extra_context.is_object()) {
    return Status::InvalidArgument("chat template context must be a JSON object");
  }
  if (too_deep(messages) || too_deep(extra_context)) {
    return Status::InvalidArgument("chat template input nested too deeply");
  }
  jinja::ValueMap globals;
  globals.set("tools", jinja::Value::none());
  globals.set("documents", jinja::Value::none());
  if (extra_context.is_object()) {
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it) {
      globals.set(it.key(), jinja::Value::from_json(it.value()));
    }
  }
  globals.set("messages", jinja::Value::from_json(messages));
  globals.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  return jinja::render(*template_, std::move(globals));
}

}  // namespace quilt::engine
