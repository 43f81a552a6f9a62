// libFuzzer: a chat template (tokenizer_config.json's chat_template or chat_template.jinja):
// parse, then render a small conversation with tools, as the chat routes would.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::json;
  static const json messages = json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi <|eot_id|> {{ x }}"},
    {"role": "assistant", "content": "Hello.", "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null]}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": ["a", {"type": "text", "text": "b"}]}
  ])");
  static const json context = json::parse(R"({
    "bos_token": "<s>", "eos_token": "</s>",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
  })");
  auto tmpl = quilt::engine::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!tmpl.ok()) return 0;
  (void)tmpl->render(messages, true, context);
  (void)tmpl->render(json::array(), false);
  return 0;
}
