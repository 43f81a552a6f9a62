// Chat templates: the fixture's, the official Llama 3 / 3.1, Mistral and Qwen2 ones, Jinja
// semantics one feature at a time, and errors coming back as Status.
#include "engine/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

std::string read_template(const std::string& name) {
  std::ifstream in(std::string(QUILT_SOURCE_DIR "/tests/data/chat_templates/") + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

ChatTemplate parse_file(const std::string& name) {
  auto t = ChatTemplate::parse(read_template(name));
  EXPECT_TRUE(t.ok()) << name << ": " << t.status().to_string();
  return std::move(t).value();
}

// Renders an inline template; failures come back as "ERROR: message".
std::string render(const std::string& source, const json& context = json::object(),
                   const json& messages = json::array(), bool add_generation_prompt = false) {
  auto t = ChatTemplate::parse(source);
  if (!t.ok()) return "ERROR: " + t.status().message();
  auto out = t->render(messages, add_generation_prompt, context);
  if (!out.ok()) return "ERROR: " + out.status().message();
  return *out;
}

const json kConversation = json::parse(R"([
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "Hello!"},
  {"role": "assistant", "content": "Hi there. How can I help?"}
])");
json first(size_t n) {
  return json(std::vector<json>(kConversation.begin(), kConversation.begin() + n));
}

const json kLlamaTokens = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}};
const json kMistralTokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};

TEST(ChatTemplateTest, FixtureChatMatchesTransformers) {
  std::ifstream in(QUILT_SOURCE_DIR "/tests/data/expected.json");
  const json fixture = json::parse(in);
  const json& chat = fixture["chat"];
  auto tok = Tokenizer::load(QUILT_SOURCE_DIR "/examples/models/tiny-llama");
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  const ChatTemplate* tmpl = (*tok)->chat_template();
  ASSERT_NE(tmpl, nullptr);
  auto rendered = tmpl->render(chat["messages"], chat["add_generation_prompt"].get<bool>(),
                               {{"bos_token", (*tok)->bos_token()}});
  ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
  EXPECT_EQ(*rendered, chat["rendered"].get<std::string>());
  EXPECT_EQ((*tok)->encode(*rendered, false), chat["ids"].get<std::vector<int32_t>>());
  auto applied = (*tok)->apply_chat_template(chat["messages"], true);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(*applied, *rendered);
}

TEST(ChatTemplateTest, Llama3) {
  const ChatTemplate t = parse_file("llama3.jinja");
  EXPECT_EQ(*t.render(kConversation, false, kLlamaTokens),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
            "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>");
  EXPECT_EQ(*t.render(first(2), true, kLlamaTokens),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
            "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, Llama31) {
  const ChatTemplate t = parse_file("llama3_1.jinja");
  const std::string system =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
      "December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>";
  EXPECT_EQ(*t.render(kConversation, false, kLlamaTokens),
            system +
                "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I "
                "help?<|eot_id|>");
  EXPECT_EQ(*t.render(first(2), true, kLlamaTokens),
            system +
                "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");

  // date_string from the caller; no system message gives an empty one.
  json ctx = kLlamaTokens;
  ctx["date_string"] = "01 Jan 2025";
  EXPECT_EQ(
      *t.render(json::parse(R"([{"role": "user", "content": " Hi "}])"), true, ctx),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
      "December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
      "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, Llama31Tools) {
  const ChatTemplate t = parse_file("llama3_1.jinja");
  json ctx = kLlamaTokens;
  ctx["tools"] = json::parse(R"([{"function": {"description": "Weather now",
      "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}},
      "required": ["city"], "type": "object"}}, "type": "function"}])");
  const json messages = json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "tool_calls": [{"function": {"arguments": {"city": "Oslo"},
                                           "name": "get_weather"}, "type": "function"}]},
    {"role": "tool", "content": {"temperature": 3.5, "unit": "C"}}
  ])");
  const std::string tool_json =
      "{\n    \"function\": {\n        \"description\": \"Weather now\",\n        \"name\": "
      "\"get_weather\",\n        \"parameters\": {\n            \"properties\": {\n               "
      " \"city\": {\n                    \"type\": \"string\"\n                }\n            },\n"
      "            \"required\": [\n                \"city\"\n            ],\n            \"type\":"
      " \"object\"\n        }\n    },\n    \"type\": \"function\"\n}";
  EXPECT_EQ(*t.render(messages, true, ctx),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please "
            "respond with a JSON for a function call with its proper arguments that best answers "
            "the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
            "dictionary of argument name and its value}.Do not use variables.\n\n" +
                tool_json +
                "\n\nWeather in Oslo?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}<|eot_id|>"
                "<|start_header_id|>ipython<|end_header_id|>\n\n{\"temperature\": 3.5, \"unit\": "
                "\"C\"}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");

  // Two tool calls in one message are refused by the template itself.
  json two = messages;
  two[2]["tool_calls"].push_back(two[2]["tool_calls"][0]);
  auto refused = t.render(two, true, ctx);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "This model only supports single tool-calls at once!");
}

TEST(ChatTemplateTest, MistralV03) {
  const ChatTemplate t = parse_file("mistral.jinja");
  // v0.3 puts the system message into the last user turn; here that turn is not the last message.
  EXPECT_EQ(*t.render(kConversation, false, kMistralTokens),
            "<s>[INST] Hello![/INST] Hi there. How can I help?</s>");
  EXPECT_EQ(*t.render(first(2), true, kMistralTokens),
            "<s>[INST] You are a helpful assistant.\n\nHello![/INST]");
  json more = kConversation;
  more.push_back({{"role", "user"}, {"content", "Tell me a joke."}});
  EXPECT_EQ(*t.render(more, true, kMistralTokens),
            "<s>[INST] Hello![/INST] Hi there. How can I help?</s>[INST] You are a helpful "
            "assistant.\n\nTell me a joke.[/INST]");

  auto bad = t.render(json::parse(R"([{"role": "user", "content": "a"},
                                      {"role": "user", "content": "b"}])"),
                      true, kMistralTokens);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().message(),
            "After the optional system message, conversation roles must alternate "
            "user/assistant/user/assistant/...");
}

TEST(ChatTemplateTest, MistralV03Tools) {
  const ChatTemplate t = parse_file("mistral.jinja");
  json ctx = kMistralTokens;
  ctx["tools"] = json::parse(R"([{"function": {"description": "Weather now",
      "name": "get_weather", "parameters": {"properties": {}, "type": "object"}},
      "type": "function"}])");
  const json messages = json::parse(R"([
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "tool_calls": [{"function": {"arguments": {"city": "Oslo"},
                                           "name": "get_weather"}, "id": "abcDEF123"}]},
    {"role": "tool", "content": "3C", "tool_call_id": "abcDEF123"}
  ])");
  EXPECT_EQ(*t.render(messages, false, ctx),
            "<s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"description\": "
            "\"Weather now\", \"name\": \"get_weather\", \"parameters\": {\"properties\": {}, "
            "\"type\": \"object\"}}}][/AVAILABLE_TOOLS][INST] Weather?[/INST][TOOL_CALLS] "
            "[{\"arguments\": {\"city\": \"Oslo\"}, \"name\": \"get_weather\", \"id\": "
            "\"abcDEF123\"}]</s>[TOOL_RESULTS] {\"content\": 3C, \"call_id\": "
            "\"abcDEF123\"}[/TOOL_RESULTS]");
}

TEST(ChatTemplateTest, MistralV01) {
  const ChatTemplate t = parse_file("mistral_v01.jinja");
  EXPECT_EQ(
      *t.render(kConversation, false, kMistralTokens),
      "<s> [INST] You are a helpful assistant.\n\nHello! [/INST] Hi there. How can I help?</s>");
  auto bad = t.render(json::parse(R"([{"role": "tool", "content": "x"}])"), false, kMistralTokens);
  ASSERT_FALSE(bad.ok());
}

TEST(ChatTemplateTest, Qwen2) {
  const ChatTemplate t = parse_file("qwen2.jinja");
  EXPECT_EQ(*t.render(kConversation, false, json::object()),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!"
            "<|im_end|>\n<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n");
  EXPECT_EQ(*t.render(json::parse(R"([{"role": "user", "content": "Hi"}])"), true, json::object()),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi"
            "<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, Qwen25) {
  const ChatTemplate t = parse_file("qwen2_5.jinja");
  EXPECT_EQ(*t.render(kConversation, false, json::object()),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!"
            "<|im_end|>\n<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n");
  EXPECT_EQ(*t.render(json::parse(R"([{"role": "user", "content": "Hi"}])"), true, json::object()),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");

  json ctx;
  ctx["tools"] =
      json::parse(R"([{"function": {"name": "now", "parameters": {}}, "type": "function"}])");
  const json messages = json::parse(R"([
    {"role": "user", "content": "Time?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"function": {"arguments": {"tz": "UTC"}, "name": "now"}}]},
    {"role": "tool", "content": "12:00"},
    {"role": "tool", "content": "noon"}
  ])");
  EXPECT_EQ(*t.render(messages, true, ctx),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
            "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
            "<tools>\n{\"function\": {\"name\": \"now\", \"parameters\": {}}, \"type\": "
            "\"function\"}\n</tools>\n\nFor each function call, return a json object with function "
            "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
            "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\nTime?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": "
            "\"now\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n"
            "<tool_response>\n12:00\n</tool_response>\n<tool_response>\nnoon\n</tool_response>"
            "<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateJinjaTest, WhitespaceControl) {
  // trim_blocks and lstrip_blocks are on, as in transformers.
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n  {{ 1 }}  {% if 1 %}y{% endif %}\n"),
            "  x\n  1  y");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif %}  c"), "ab  c");
  EXPECT_EQ(render("{# c #}\n  {# d #}\nx"), "x");
  EXPECT_EQ(render("a\n  {{- 'b' -}}  \nc"), "abc");
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
  EXPECT_EQ(render("{{ {'a': {'b': 1}}['a']['b'] }}"), "1");
  // Newlines are normalized and one trailing newline of the template is dropped, as Jinja does.
  EXPECT_EQ(render("{{ 'a' }}\n"), "a");
  EXPECT_EQ(render("x\n\n"), "x\n");
  EXPECT_EQ(render("x\r\ny\rz{% if true %}\r\nA{% endif %}"), "x\ny\nzA");
}

TEST(ChatTemplateJinjaTest, LiteralsAndPrinting) {
  EXPECT_EQ(render("{{ 'a\\n\\t\\'b' }}|{{ \"\\u00e9\\x41\" }}|{{ 'x' 'y' }}"), "a\n\t'b|éA|xy");
  EXPECT_EQ(render("{{ [1, 'a', none, true, {'k': 'v'}, 1.5] }}"),
            "[1, 'a', None, True, {'k': 'v'}, 1.5]");
  EXPECT_EQ(render("{{ True }} {{ None }} {{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}"),
            "True None 1.0 1e+20 1e-05 0.30000000000000004");
  EXPECT_EQ(render("{{ [\"it's\"] }}"), "[\"it's\"]");
  EXPECT_EQ(render("{{ undefined_thing }}|{{ x.y }}", {{"x", {{"y", nullptr}}}}), "|None");
  EXPECT_EQ(render("{% set ns = namespace(a=1) %}{{ ns }} {{ 5 | float }} {{ 2.5 | round }}"),
            "<Namespace {'a': 1}> 5.0 2.0");
}

TEST(ChatTemplateJinjaTest, Operators) {
  EXPECT_EQ(
      render("{{ 1 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 10 / 5 }}"),
      "0.5 3 -4 2 1024 2.0");
  EXPECT_EQ(render("{{ 'a' + 'b' }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ 1 ~ 'x' ~ none }}"),
            "ab abab [1, 2] 1xNone");
  EXPECT_EQ(
      render("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}"),
      "True True True True False");
  EXPECT_EQ(
      render("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }}"),
      "True True True True");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ not '' }} {{ 'a' if false else 'b' }}|{{ 'a' "
                   "if false }}"),
            "x y True b|");
  EXPECT_EQ(render("{{ -x + 1 }}", {{"x", 5}}), "-4");
}

TEST(ChatTemplateJinjaTest, AccessAndSlicing) {
  const json ctx = {{"m", {{"role", "user"}, {"content", "héllo"}}}, {"l", {1, 2, 3, 4}}};
  EXPECT_EQ(render("{{ m.role }} {{ m['content'] }} {{ m.missing is defined }} {{ l[-1] }} {{ l[9] "
                   "is defined }}",
                   ctx),
            "user héllo False 4 False");
  EXPECT_EQ(render("{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ m.content[1:3] }} {{ "
                   "m.content[::-1] }}",
                   ctx),
            "[2, 3, 4] [1, 2, 3] [4, 3, 2, 1] [1, 3] él olléh");
  EXPECT_EQ(render("{{ m.content[0] }}{{ l.0 }}", ctx), "h1");
}

TEST(ChatTemplateJinjaTest, Loops) {
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
                   "{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "10TrueFalse3;21FalseFalse3;32FalseTrue3;");
  EXPECT_EQ(
      render("{% for x in [1, 2, 3] if x > 1 %}{{ x }}/{{ loop.length }} {% else %}E{% endfor %}"),
      "2/2 3/2 ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}"),
            "a=1,b=2,");
  EXPECT_EQ(render("{% for k, v in d | items %}{{ k }}={{ v }}{% endfor %}", {{"d", {{"z", 1}}}}),
            "z=1");
  EXPECT_EQ(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "013");
  EXPECT_EQ(render("{% for c in 'ab' %}{{ c }}{{ loop.cycle('+', '-') }}{% endfor %}"), "a+b-");
  // Assignments inside a loop stay in the iteration; namespaces carry state out.
  EXPECT_EQ(
      render(
          "{% set x = 5 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}|{{ x }}"),
      "5152|5");
  EXPECT_EQ(render("{% set ns = namespace(n=0, seen=false) %}{% for i in range(4) %}"
                   "{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ ns.seen }}"),
            "6 False");
  EXPECT_EQ(render("{% if true %}{% set y = 3 %}{% endif %}{{ y }}"), "3");
}

TEST(ChatTemplateJinjaTest, FiltersAndTests) {
  EXPECT_EQ(
      render(
          "{{ '  x ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | title }}|"
          "{{ 'hELLO' | capitalize }}|{{ [1, 2] | length }}|{{ 'héllo' | length }}"),
      "x|AB|ab|Hello World|Hello|2|5");
  EXPECT_EQ(
      render(
          "{{ x | default('d') }}|{{ '' | default('d', true) }}|{{ [1, 2] | join(', ') }}|"
          "{{ [3, 1] | first }}{{ [3, 1] | last }}|{{ 3 | string }}|{{ '42' | int + 1 }}|"
          "{{ 'ab' | list }}|{{ 'aXa' | replace('a', 'b') }}|{{ [2, 1, 3] | sort }}|{{ '<' | e }}"),
      "d|d|1, 2|31|3|43|['a', 'b']|bXb|[1, 2, 3]|&lt;");
  const json ctx = {{"msgs", json::parse(R"([{"role": "user", "n": 1}, {"role": "bot", "n": 2},
                                              {"role": "user", "n": 3}])")}};
  EXPECT_EQ(render("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='n') | list }}"
                   "{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='n') | list }}"
                   "{{ [1, 2, 3, 4] | select('odd') | list }}{{ ['a', 'b'] | reject('equalto', "
                   "'a') | list }}"
                   "{{ ['a', 'b'] | map('upper') | join }}{{ msgs | map(attribute='n') | sum }}",
                   ctx),
            "[1, 3][2][1, 3]['b']AB6");
  EXPECT_EQ(render("{{ {'b': 1, 'a': [1, 2.5, none, 'é\\n']} | tojson }}"),
            "{\"b\": 1, \"a\": [1, 2.5, null, \"é\\n\"]}");
  EXPECT_EQ(render("{{ {'a': [1, {}], 'b': 'x'} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": \"x\"\n}");
  EXPECT_EQ(render("{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}"
                   "{{ 's' is iterable }}{{ 3 is divisibleby 3 }}{{ 3 is odd }}{{ 1 is not none }}"
                   "{{ 1 is number }}{{ 1.5 is integer }}"),
            "FalseTrueTrueTrueTrueTrueTrueTrueTrueFalse");
  EXPECT_EQ(render("{% filter upper %}shout{% endfilter %}"), "SHOUT");
  EXPECT_EQ(render("{% set block %}in {{ 1 }}{% endset %}[{{ block }}]"), "[in 1]");
}

TEST(ChatTemplateJinjaTest, MethodsAndFunctions) {
  EXPECT_EQ(
      render(
          "{{ '  x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ ' a'.lstrip() }}|{{ 'a '.rstrip() }}|"
          "{{ 'a b  c'.split() }}|{{ 'a,b'.split(',') }}|{{ 'abc'.startswith('ab') }}|"
          "{{ 'abc'.endswith(('x', 'c')) }}|{{ 'ab'.upper() }}|{{ \"they're\".title() }}|"
          "{{ 'aa'.replace('a', 'b', 1) }}|{{ '-'.join(['a', 'b']) }}"),
      "x|hi|a|a|['a', 'b', 'c']|['a', 'b']|True|True|AB|They'Re|ba|a-b");
  EXPECT_EQ(
      render("{{ d.get('a') }} {{ d.get('z', 0) }} {{ d.keys() | list }} {{ d.values() | list }}",
             {{"d", {{"a", 1}}}}),
      "1 0 ['a'] [1]");
  EXPECT_EQ(render("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ dict(a=1).a }}"),
            "[0, 1, 2] [1, 3, 5] 1");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                   "{{ greet('Ann') }} {{ greet('Bo', punct='?') }}"),
            "Hi Ann! Hi Bo?");
  EXPECT_EQ(render("{{ strftime_now is defined }} {{ strftime_now('%Y') | length }}"), "True 4");
  EXPECT_EQ(render("{{ messages[0].content }} {{ add_generation_prompt }} {{ tools }}",
                   json::object(), json::parse(R"([{"role": "user", "content": "q"}])"), true),
            "q True None");
}

TEST(ChatTemplateJinjaTest, ErrorsAreStatuses) {
  auto unterminated = ChatTemplate::parse("line one\n{{ messages ");
  ASSERT_FALSE(unterminated.ok());
  EXPECT_TRUE(unterminated.status().IsInvalidArgument());
  EXPECT_NE(unterminated.status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(ChatTemplate::parse("{% if x %}never closed").ok());
  EXPECT_FALSE(ChatTemplate::parse("{% for x in y %}{% endif %}").ok());
  EXPECT_FALSE(ChatTemplate::parse("{% frobnicate %}").ok());
  EXPECT_FALSE(ChatTemplate::parse("{{ 'unterminated }}").ok());
  EXPECT_FALSE(ChatTemplate::parse("{# comment").ok());
  EXPECT_FALSE(ChatTemplate::parse("{{ (1 }}").ok());
  EXPECT_FALSE(ChatTemplate::parse("{{ a b }}").ok());
  EXPECT_TRUE(ChatTemplate::parse(std::string(5000, '(')).ok());  // plain text
  EXPECT_FALSE(ChatTemplate::parse("{{ " + std::string(5000, '(') + " }}").ok());

  EXPECT_EQ(render("{{ raise_exception('no way') }}"), "ERROR: no way");
  EXPECT_EQ(render("{{ 'x' | no_such_filter }}"),
            "ERROR: template line 1: no filter named 'no_such_filter'");
  EXPECT_NE(render("{{ 'a' + missing }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(render("{{ missing.attr }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(render("{{ 1 + 'a' }}").find("unsupported operand"), std::string::npos);
  EXPECT_NE(render("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(render("{{ 1 is frobbed }}").find("no test named"), std::string::npos);
  EXPECT_NE(render("{{ nope() }}").find("undefined"), std::string::npos);
  EXPECT_NE(render("{% for x in none %}{% endfor %}").find("not iterable"), std::string::npos);
  EXPECT_NE(render("{% set x = 1 %}{% set x.a = 2 %}").find("namespace"), std::string::npos);
  EXPECT_NE(render("{{ {'a': 1} | tojson }}{{ x | tojson }}").find("not JSON serializable"),
            std::string::npos);
  // Runaway templates stop instead of hanging or overflowing the stack.
  EXPECT_NE(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("too deep"),
            std::string::npos);
  EXPECT_NE(render("{% for i in range(1000) %}{% for j in range(1001) %}{% endfor %}{% endfor %}")
                .find("too long"),
            std::string::npos);
  EXPECT_NE(render("{{ range(10000000) }}").find("too large"), std::string::npos);

  const ChatTemplate t = *ChatTemplate::parse("{{ messages }}");
  EXPECT_FALSE(t.render(json::object(), false, json::object()).ok());  // messages must be a list
  const json deep = json::parse(std::string(1000, '[') + std::string(1000, ']'));
  EXPECT_FALSE(t.render(deep, false, json::object()).ok());
}

}  // namespace
}  // namespace quilt::engine
