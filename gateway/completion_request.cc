// parse_completion_request: JSON → CompletionRequest, with OpenAI's field types and ranges.
#include "gateway/completion_request.h"

#include <algorithm>
#include <cmath>

namespace quilt::gateway {
namespace {

using nlohmann::json;

struct Parser {
  const json& body;
  std::string* error_param;

  Status fail(const std::string& field, const std::string& why) {
    if (error_param) *error_param = field;
    return Status::InvalidArgument(field + ": " + why);
  }
  const json* find(const char* field) {
    auto it = body.find(field);
    return (it == body.end() || it->is_null()) ? nullptr : &*it;
  }
  Status number(const char* field, double lo, double hi, std::optional<double>& out) {
    const json* v = find(field);
    if (!v) return Status::OK();
    if (!v->is_number()) return fail(field, "must be a number");
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      return fail(field, "must be between " + json(lo).dump() + " and " + json(hi).dump());
    }
    out = d;
    return Status::OK();
  }
  Status integer(const char* field, int64_t lo, int64_t hi, std::optional<int64_t>& out) {
    const json* v = find(field);
    if (!v) return Status::OK();
    if (!v->is_number_integer()) return fail(field, "must be an integer");
    const int64_t i = v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX ? INT64_MAX : v->get<int64_t>();
    if (i < lo || i > hi) return fail(field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    out = i;
    return Status::OK();
  }
  Status boolean(const char* field, bool& out) {
    const json* v = find(field);
    if (!v) return Status::OK();
    if (!v->is_boolean()) return fail(field, "must be true or false");
    out = v->get<bool>();
    return Status::OK();
  }
};

Status parse_prompt(Parser& p, CompletionRequest& r) {
  const json* prompt = p.find("prompt");
  if (!prompt) return p.fail("prompt", "is required");
  // A one-element batch is the same as its element; real batches are not supported yet.
  if (prompt->is_array() && prompt->size() == 1 && ((*prompt)[0].is_string() || (*prompt)[0].is_array())) {
    prompt = &(*prompt)[0];
  }
  if (prompt->is_string()) {
    r.prompt_text = prompt->get<std::string>();
    return Status::OK();
  }
  if (!prompt->is_array() || prompt->empty()) {
    return p.fail("prompt", "must be a string or a non-empty array of token ids");
  }
  for (const json& id : *prompt) {
    if (!id.is_number_integer()) {
      return p.fail("prompt", "must be a string or an array of token ids (batched prompts are not supported)");
    }
    const int64_t v = id.get<int64_t>();
    if (v < 0 || v > INT32_MAX) return p.fail("prompt", "token id " + id.dump() + " is out of range");
    r.prompt_ids.push_back(static_cast<int32_t>(v));
  }
  return Status::OK();
}

Status parse_messages(Parser& p, CompletionRequest& r) {
  const json* messages = p.find("messages");
  if (!messages) return p.fail("messages", "is required");
  if (!messages->is_array() || messages->empty()) return p.fail("messages", "must be a non-empty array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string field = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return p.fail(field, "must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return p.fail(field + ".role", "must be a string");
    auto content = m.find("content");
    if (content == m.end()) return p.fail(field + ".content", "is required");
    if (!content->is_string() && !content->is_null() && !content->is_array()) {
      return p.fail(field + ".content", "must be a string or an array of text parts");
    }
  }
  // Content given as an array of {"type":"text","text":...} parts is joined into one string.
  r.messages = *messages;
  for (size_t i = 0; i < r.messages.size(); ++i) {
    json& content = r.messages[i]["content"];
    if (!content.is_array()) continue;
    std::string text;
    for (const json& part : content) {
      // value("type", "") would throw on a non-string type: test the kind first.
      const auto type = part.is_object() ? part.find("type") : part.end();
      if (!part.is_object() || type == part.end() || !type->is_string() || *type != "text" ||
          !part.contains("text") || !part["text"].is_string()) {
        return p.fail("messages[" + std::to_string(i) + "].content", "only text parts are supported");
      }
      text += part["text"].get<std::string>();
    }
    content = text;
  }
  return Status::OK();
}

// OpenAI's logit_bias: {"<token id>": bias in [-100, 100]}. Ids beyond the vocabulary are the
// engine's to refuse (it knows the vocabulary).
Status parse_logit_bias(Parser& p, engine::SamplingParams& s) {
  const json* bias = p.find("logit_bias");
  if (!bias) return Status::OK();
  if (!bias->is_object()) return p.fail("logit_bias", "must be an object of token id to bias");
  if (bias->size() > 1024) return p.fail("logit_bias", "may hold at most 1024 tokens");
  for (const auto& [key, value] : bias->items()) {
    int64_t id = -1;
    const bool digits = !key.empty() && key.size() <= 10 &&
                        key.find_first_not_of("0123456789") == std::string::npos;
    if (digits) id = std::stoll(key);
    if (!digits || id > INT32_MAX) {
      return p.fail("logit_bias", "key \"" + key + "\" is not a token id");
    }
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < -100 ||
        value.get<double>() > 100) {
      return p.fail("logit_bias", "the bias of token " + key + " must be a number in [-100, 100]");
    }
    s.logit_bias.emplace_back(static_cast<int32_t>(id), value.get<float>());
  }
  return Status::OK();
}

// OpenAI fields Quilt does not implement: a 400 naming the field, never silently ignored (a
// client that relies on them, say `.parse()` on response_format, would misread the answer).
Status refuse_unsupported(Parser& p, bool chat, int64_t n) {
  for (const char* field : {"tools", "tool_choice", "functions", "function_call"}) {
    if (p.find(field)) return p.fail(field, "tool and function calling are not supported");
  }
  if (const json* format = p.find("response_format")) {
    const bool text = format->is_object() && format->contains("type") &&
                      (*format)["type"].is_string() && (*format)["type"] == "text";
    if (!text) return p.fail("response_format", "only {\"type\": \"text\"} is supported");
  }
  if (const json* modalities = p.find("modalities")) {
    if (!modalities->is_array() || modalities->size() != 1 || (*modalities)[0] != "text") {
      return p.fail("modalities", "only [\"text\"] is supported");
    }
  }
  if (p.find("audio")) return p.fail("audio", "audio output is not supported");
  if (!chat) {
    if (const json* suffix = p.find("suffix")) {
      if (!suffix->is_string()) return p.fail("suffix", "must be a string");
      if (!suffix->get<std::string>().empty()) return p.fail("suffix", "insertion is not supported");
    }
    std::optional<int64_t> best_of;
    QUILT_RETURN_IF_ERROR(p.integer("best_of", 1, 16, best_of));
    if (best_of && *best_of != n) {
      return p.fail("best_of", "only best_of equal to n is supported (n is " + std::to_string(n) + ")");
    }
  }
  return Status::OK();
}

}  // namespace

Result<CompletionRequest> parse_completion_request(const std::string& body, bool chat,
                                                   std::string* error_param) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (error_param) error_param->clear();
    return Status::InvalidArgument("request body is not valid JSON");
  }
  if (!j.is_object()) return Status::InvalidArgument("request body must be a JSON object");
  Parser p{j, error_param};
  CompletionRequest r;
  r.chat = chat;

  if (const json* model = p.find("model")) {
    if (!model->is_string()) return p.fail("model", "must be a string");
    r.model = model->get<std::string>();
  }
  QUILT_RETURN_IF_ERROR(chat ? parse_messages(p, r) : parse_prompt(p, r));

  std::optional<int64_t> max_tokens, n, top_k, logprobs, seed, top_logprobs;
  std::optional<double> temperature, top_p, presence_penalty, frequency_penalty;
  QUILT_RETURN_IF_ERROR(p.integer(chat && p.find("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                                  1, 1 << 20, max_tokens));
  QUILT_RETURN_IF_ERROR(p.integer("n", 1, 16, n));
  QUILT_RETURN_IF_ERROR(p.integer("top_k", -1, 1 << 20, top_k));
  QUILT_RETURN_IF_ERROR(p.integer("seed", INT64_MIN, INT64_MAX, seed));
  QUILT_RETURN_IF_ERROR(p.number("temperature", 0, 2, temperature));
  QUILT_RETURN_IF_ERROR(p.number("top_p", 0, 1, top_p));
  QUILT_RETURN_IF_ERROR(p.number("timeout", 0.001, 86400, r.timeout_s));
  QUILT_RETURN_IF_ERROR(p.number("presence_penalty", -2, 2, presence_penalty));
  QUILT_RETURN_IF_ERROR(p.number("frequency_penalty", -2, 2, frequency_penalty));
  QUILT_RETURN_IF_ERROR(parse_logit_bias(p, r.sampling));
  // The engine samples in float: a top_p that rounds to 0 there (5e-324) is as refused as 0.
  if (top_p && static_cast<float>(*top_p) <= 0.f) return p.fail("top_p", "must be greater than 0");
  if (chat) {
    bool want = false;
    QUILT_RETURN_IF_ERROR(p.boolean("logprobs", want));
    QUILT_RETURN_IF_ERROR(p.integer("top_logprobs", 0, 20, top_logprobs));
    if (top_logprobs && !want) return p.fail("top_logprobs", "requires logprobs: true");
    // The engine reports the sampled token's logprob with the top list, so ask for at least one.
    if (want) r.sampling.logprobs = std::max<int32_t>(1, static_cast<int32_t>(top_logprobs.value_or(0)));
  } else {
    QUILT_RETURN_IF_ERROR(p.integer("logprobs", 0, 20, logprobs));
    r.sampling.logprobs = static_cast<int32_t>(logprobs.value_or(0));
  }
  QUILT_RETURN_IF_ERROR(p.boolean("stream", r.stream));
  QUILT_RETURN_IF_ERROR(p.boolean("ignore_eos", r.sampling.ignore_eos));
  QUILT_RETURN_IF_ERROR(p.boolean("return_token_ids", r.return_token_ids));
  if (!chat) QUILT_RETURN_IF_ERROR(p.boolean("echo", r.echo));
  if (const json* opts = p.find("stream_options")) {
    if (!opts->is_object()) return p.fail("stream_options", "must be an object");
    auto inc = opts->find("include_usage");
    if (inc != opts->end() && !inc->is_boolean()) return p.fail("stream_options.include_usage", "must be true or false");
    r.include_usage = inc != opts->end() && inc->get<bool>();
  }
  if (const json* stop = p.find("stop")) {
    if (stop->is_string()) {
      r.sampling.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array() && stop->size() <= 16) {
      for (const json& s : *stop) {
        if (!s.is_string()) return p.fail("stop", "must be a string or an array of strings");
        r.sampling.stop.push_back(s.get<std::string>());
      }
    } else {
      return p.fail("stop", "must be a string or an array of at most 16 strings");
    }
  }
  if (const json* user = p.find("user")) {
    if (!user->is_string()) return p.fail("user", "must be a string");
    r.user = user->get<std::string>();
  }

  QUILT_RETURN_IF_ERROR(refuse_unsupported(p, chat, n.value_or(1)));

  r.max_tokens_given = max_tokens.has_value();
  r.sampling.presence_penalty = static_cast<float>(presence_penalty.value_or(0));
  r.sampling.frequency_penalty = static_cast<float>(frequency_penalty.value_or(0));
  r.sampling.max_tokens = static_cast<int32_t>(max_tokens.value_or(16));
  r.n = static_cast<int32_t>(n.value_or(1));
  r.sampling.temperature = static_cast<float>(temperature.value_or(1.0));
  r.sampling.top_p = static_cast<float>(top_p.value_or(1.0));
  r.sampling.top_k = top_k && *top_k > 0 ? static_cast<int32_t>(*top_k) : 0;
  if (seed) r.sampling.seed = static_cast<uint64_t>(*seed);
  return r;
}

}  // namespace quilt::gateway
