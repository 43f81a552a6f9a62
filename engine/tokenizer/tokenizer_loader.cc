// Tokenizer::load: reads tokenizer.json, tokenizer_config.json and chat_template.jinja.
#include <fstream>
#include <sstream>

#include "common/files.h"
#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/post_processor.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_model.h"

namespace quilt::engine {
namespace {

using nlohmann::json;

Result<json> read_json(const std::filesystem::path& path) {
  QUILT_ASSIGN_OR_RETURN(std::string text, quilt::read_file(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(path.string() + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(path.string() + ": expected a JSON object");
  return j;
}

Result<std::vector<AddedToken>> parse_added_tokens(const json& j, const std::string& where) {
  std::vector<AddedToken> tokens;
  if (j.is_null()) return tokens;
  if (!j.is_array()) return Status::InvalidArgument(where + ": expected an array");
  for (size_t i = 0; i < j.size(); ++i) {
    const json& t = j[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"] < 0 ||
        !t.contains("content") || !t["content"].is_string()) {
      return Status::InvalidArgument(at + ": expected {\"id\": int, \"content\": string, ...}");
    }
    AddedToken token;
    token.id = t["id"].get<int32_t>();
    token.content = t["content"].get<std::string>();
    auto flag = [&](const char* key) { return t.contains(key) && t[key].is_boolean() && t[key]; };
    token.special = flag("special");
    token.lstrip = flag("lstrip");
    token.rstrip = flag("rstrip");
    token.single_word = flag("single_word");
    token.normalized = flag("normalized");
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// bos_token / eos_token: a string, an AddedToken object {"content": ...}, or null.
Result<std::string> special_token_text(const json& config, const char* key,
                                       const std::string& where) {
  if (!config.contains(key) || config[key].is_null()) return std::string();
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return Status::InvalidArgument(where + "." + key + ": expected a string or {\"content\": ...}");
}

// The template source from tokenizer_config.json, or nullopt when it has none.
Result<std::optional<std::string>> config_chat_template(const json& config,
                                                        const std::string& where) {
  if (!config.contains("chat_template") || config["chat_template"].is_null()) {
    return std::optional<std::string>();
  }
  const json& t = config["chat_template"];
  if (t.is_string()) return std::optional<std::string>(t.get<std::string>());
  if (t.is_array()) {
    // Named templates (e.g. "default", "tool_use"): the default one is the chat template.
    for (const json& entry : t) {
      if (entry.is_object() && entry.value("name", std::string()) == "default" &&
          entry.contains("template") && entry["template"].is_string()) {
        return std::optional<std::string>(entry["template"].get<std::string>());
      }
    }
    return std::optional<std::string>();
  }
  return Status::InvalidArgument(where +
                                 ".chat_template: expected a string or a list of "
                                 "{\"name\", \"template\"}");
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::filesystem::path& model_dir) {
  const std::filesystem::path tokenizer_path = model_dir / "tokenizer.json";
  const std::filesystem::path config_path = model_dir / "tokenizer_config.json";
  const std::string tj = tokenizer_path.string();
  const std::string cj = config_path.string();
  QUILT_ASSIGN_OR_RETURN(json tokenizer_json, read_json(tokenizer_path));
  QUILT_ASSIGN_OR_RETURN(json config, read_json(config_path));

  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer());
  if (const json n = tokenizer_json.value("normalizer", json()); !n.is_null()) {
    QUILT_ASSIGN_OR_RETURN(tok->normalizer_, Normalizer::from_json(n, tj + " normalizer"));
  }
  if (!tokenizer_json.contains("model")) {
    return Status::InvalidArgument(tj + ": missing \"model\"");
  }
  QUILT_ASSIGN_OR_RETURN(tok->model_,
                         TokenizerModel::from_json(tokenizer_json["model"], tj + " model"));
  if (const json pre = tokenizer_json.value("pre_tokenizer", json()); !pre.is_null()) {
    QUILT_ASSIGN_OR_RETURN(tok->pre_tokenizer_,
                           PreTokenizer::from_json(pre, tj + " pre_tokenizer"));
  }
  if (const json d = tokenizer_json.value("decoder", json()); !d.is_null()) {
    QUILT_ASSIGN_OR_RETURN(tok->decoder_, Decoder::from_json(d, tj + " decoder"));
  }
  QUILT_ASSIGN_OR_RETURN(
      std::vector<AddedToken> added,
      parse_added_tokens(tokenizer_json.value("added_tokens", json()), tj + " added_tokens"));
  QUILT_ASSIGN_OR_RETURN(SpecialTokenFrame frame,
                         post_processor_from_json(tokenizer_json.value("post_processor", json()),
                                                  tj + " post_processor"));

  int32_t max_id = tok->model_->max_id();
  for (const AddedToken& t : added) max_id = std::max(max_id, t.id);
  tok->vocab_size_ = max_id + 1;

  tok->token_text_.assign(tok->vocab_size_, std::string());
  tok->token_bytes_.assign(tok->vocab_size_, std::string());
  tok->special_.assign(tok->vocab_size_, 0);
  for (int32_t id = 0; id <= tok->model_->max_id(); ++id) {
    if (const std::string* text = tok->model_->id_to_token(id)) tok->token_text_[id] = *text;
  }
  for (const AddedToken& t : added) {
    tok->token_text_[t.id] = t.content;
    tok->special_[t.id] = t.special ? 1 : 0;
  }
  for (int32_t id = 0; id < tok->vocab_size_; ++id) {
    tok->token_bytes_[id] = tok->token_text_[id];
    if (tok->decoder_) tok->decoder_->piece(tok->token_bytes_[id]);
  }
  tok->added_ = std::make_unique<AddedTokenMatcher>(std::move(added), tok->normalizer_.get());

  QUILT_ASSIGN_OR_RETURN(tok->bos_token_, special_token_text(config, "bos_token", cj));
  QUILT_ASSIGN_OR_RETURN(tok->eos_token_, special_token_text(config, "eos_token", cj));
  if (!tok->bos_token_.empty()) tok->bos_id_ = tok->token_to_id(tok->bos_token_);
  if (!tok->eos_token_.empty()) tok->eos_id_ = tok->token_to_id(tok->eos_token_);

  const std::string tokenizer_class = config.value("tokenizer_class", std::string());
  if (takes_special_tokens_from_config(tokenizer_class)) {
    // transformers' update_post_processor(): BOS unless add_bos_token is false, EOS only when
    // add_eos_token is true, in place of whatever tokenizer.json's post-processor says.
    frame = SpecialTokenFrame();
    auto flag = [&](const char* key, bool fallback) {
      auto it = config.find(key);
      return it != config.end() && it->is_boolean() ? it->get<bool>() : fallback;
    };
    const struct {
      const char* key;
      bool fallback;
      const std::optional<int32_t>& id;
      std::vector<int32_t>& ids;
    } rules[] = {{"add_bos_token", true, tok->bos_id_, frame.prefix},
                 {"add_eos_token", false, tok->eos_id_, frame.suffix}};
    for (const auto& rule : rules) {
      if (!flag(rule.key, rule.fallback)) continue;
      if (!rule.id) {
        return Status::InvalidArgument(cj + "." + rule.key + ": true for tokenizer_class \"" +
                                       tokenizer_class +
                                       "\", but its token is not in the vocabulary");
      }
      rule.ids.push_back(*rule.id);
    }
  }
  for (const std::vector<int32_t>* ids : {&frame.prefix, &frame.suffix}) {
    for (int32_t id : *ids) {
      if (id < 0 || id > max_id) {
        return Status::InvalidArgument(tj + " post_processor: id " + std::to_string(id) +
                                       " is outside the vocabulary");
      }
    }
  }
  tok->prefix_ids_ = std::move(frame.prefix);
  tok->suffix_ids_ = std::move(frame.suffix);

  QUILT_ASSIGN_OR_RETURN(std::optional<std::string> source, config_chat_template(config, cj));
  std::string template_where = cj + " chat_template";
  const std::filesystem::path jinja_path = model_dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_path)) {
    QUILT_ASSIGN_OR_RETURN(source, quilt::read_file(jinja_path));
    template_where = jinja_path.string();
  }
  if (source) {
    auto parsed = ChatTemplate::parse(std::move(*source));
    if (!parsed.ok()) return parsed.status().with_context(template_where);
    tok->chat_template_.emplace(std::move(parsed).value());
  }
  return tok;
}

}  // namespace quilt::engine
