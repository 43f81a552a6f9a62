// Tokenizer::load: reads tokenizer.json, tokenizer_config.json and chat_template.jinja.
#include <fstream>
#include <sstream>

#include "common/files.h"
#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"

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

// Only normalizers that leave text unchanged are accepted: anything else (NFC, Lowercase, ...)
// would silently tokenize differently from Hugging Face.
Status check_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return Status::OK();
  const std::string type = j.is_object() ? j.value("type", std::string()) : std::string();
  if (type == "Sequence" && j.contains("normalizers") && j["normalizers"].is_array()) {
    for (size_t i = 0; i < j["normalizers"].size(); ++i) {
      QUILT_RETURN_IF_ERROR(
          check_normalizer(j["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]"));
    }
    return Status::OK();
  }
  return Status::Unimplemented(where + ".type: unsupported normalizer \"" + type + "\"");
}

Status check_decoder(const json& j, const std::string& where) {
  const std::string type = j.is_object() ? j.value("type", std::string()) : std::string();
  if (type == "ByteLevel") return Status::OK();
  if (j.is_null()) return Status::Unimplemented(where + ": a ByteLevel decoder is required");
  return Status::Unimplemented(where + ".type: unsupported decoder \"" + type + "\"");
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

// The ids that the post-processor puts before and after a single sequence.
Status parse_post_processor(const json& j, const std::string& where, std::vector<int32_t>* prefix,
                            std::vector<int32_t>* suffix) {
  if (j.is_null()) return Status::OK();
  const std::string type = j.is_object() ? j.value("type", std::string()) : std::string();
  if (type == "ByteLevel") return Status::OK();
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return Status::InvalidArgument(where + ".processors: expected an array");
    }
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      // Each later processor wraps the output of the ones before it.
      std::vector<int32_t> p, s;
      QUILT_RETURN_IF_ERROR(parse_post_processor(
          j["processors"][i], where + ".processors[" + std::to_string(i) + "]", &p, &s));
      prefix->insert(prefix->begin(), p.begin(), p.end());
      suffix->insert(suffix->end(), s.begin(), s.end());
    }
    return Status::OK();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
          !j[key][1].is_number_integer()) {
        return Status::InvalidArgument(where + "." + key + ": expected [token, id]");
      }
    }
    prefix->push_back(j["cls"][1].get<int32_t>());
    suffix->push_back(j["sep"][1].get<int32_t>());
    return Status::OK();
  }
  if (type != "TemplateProcessing") {
    return Status::Unimplemented(where + ".type: unsupported post-processor \"" + type + "\"");
  }
  if (!j.contains("single") || !j["single"].is_array()) {
    return Status::InvalidArgument(where + ".single: expected an array");
  }
  const json specials = j.value("special_tokens", json::object());
  bool seen_sequence = false;
  for (size_t i = 0; i < j["single"].size(); ++i) {
    const json& piece = j["single"][i];
    const std::string at = where + ".single[" + std::to_string(i) + "]";
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id") ||
        !piece["SpecialToken"]["id"].is_string()) {
      return Status::InvalidArgument(at + ": expected a Sequence or a SpecialToken");
    }
    const std::string name = piece["SpecialToken"]["id"].get<std::string>();
    if (!specials.contains(name) || !specials[name].contains("ids") ||
        !specials[name]["ids"].is_array()) {
      return Status::InvalidArgument(where + ".special_tokens: no ids for \"" + name + "\"");
    }
    for (const json& id : specials[name]["ids"]) {
      if (!id.is_number_integer()) {
        return Status::InvalidArgument(where + ".special_tokens[\"" + name + "\"].ids: not ints");
      }
      (seen_sequence ? suffix : prefix)->push_back(id.get<int32_t>());
    }
  }
  return Status::OK();
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
  QUILT_RETURN_IF_ERROR(
      check_normalizer(tokenizer_json.value("normalizer", json()), tj + " normalizer"));
  QUILT_RETURN_IF_ERROR(check_decoder(tokenizer_json.value("decoder", json()), tj + " decoder"));
  if (!tokenizer_json.contains("model")) {
    return Status::InvalidArgument(tj + ": missing \"model\"");
  }
  QUILT_ASSIGN_OR_RETURN(tok->model_, BpeModel::from_json(tokenizer_json["model"], tj + " model"));
  if (const json pre = tokenizer_json.value("pre_tokenizer", json()); !pre.is_null()) {
    QUILT_ASSIGN_OR_RETURN(tok->pre_tokenizer_,
                           PreTokenizer::from_json(pre, tj + " pre_tokenizer"));
  }
  QUILT_ASSIGN_OR_RETURN(
      std::vector<AddedToken> added,
      parse_added_tokens(tokenizer_json.value("added_tokens", json()), tj + " added_tokens"));
  QUILT_RETURN_IF_ERROR(parse_post_processor(tokenizer_json.value("post_processor", json()),
                                             tj + " post_processor", &tok->prefix_ids_,
                                             &tok->suffix_ids_));

  int32_t max_id = tok->model_->max_id();
  for (const AddedToken& t : added) max_id = std::max(max_id, t.id);
  tok->vocab_size_ = max_id + 1;
  for (int32_t id : tok->prefix_ids_) {
    if (id < 0 || id > max_id) return Status::InvalidArgument(tj + " post_processor: bad id");
  }
  for (int32_t id : tok->suffix_ids_) {
    if (id < 0 || id > max_id) return Status::InvalidArgument(tj + " post_processor: bad id");
  }

  // The decoder is ByteLevel (checked above): a token's bytes are its characters mapped back,
  // except tokens with characters outside the alphabet, which decode to their UTF-8 text.
  tok->token_bytes_.assign(tok->vocab_size_, std::string());
  tok->special_.assign(tok->vocab_size_, 0);
  for (int32_t id = 0; id <= tok->model_->max_id(); ++id) {
    if (const std::string* text = tok->model_->id_to_token(id)) {
      tok->token_bytes_[id] = byte_level_to_bytes(*text).value_or(*text);
    }
  }
  for (const AddedToken& t : added) {
    tok->token_bytes_[t.id] = byte_level_to_bytes(t.content).value_or(t.content);
    tok->special_[t.id] = t.special ? 1 : 0;
  }
  tok->added_ = std::make_unique<AddedTokenMatcher>(std::move(added));

  QUILT_ASSIGN_OR_RETURN(tok->bos_token_, special_token_text(config, "bos_token", cj));
  QUILT_ASSIGN_OR_RETURN(tok->eos_token_, special_token_text(config, "eos_token", cj));
  if (!tok->bos_token_.empty()) tok->bos_id_ = tok->token_to_id(tok->bos_token_);
  if (!tok->eos_token_.empty()) tok->eos_id_ = tok->token_to_id(tok->eos_token_);

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
