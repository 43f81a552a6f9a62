// The single-sequence part of Hugging Face post-processors: the ids put before and after a text.
#include "engine/tokenizer/post_processor.h"

#include <string_view>

namespace quilt::engine {

using nlohmann::json;

Result<SpecialTokenFrame> post_processor_from_json(const json& j, const std::string& where) {
  SpecialTokenFrame frame;
  if (j.is_null()) return frame;
  const std::string type = j.is_object() ? j.value("type", std::string()) : std::string();
  if (type == "ByteLevel") return frame;  // it only trims offsets
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return Status::InvalidArgument(where + ".processors: expected an array");
    }
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      // Each later processor wraps the output of the ones before it.
      QUILT_ASSIGN_OR_RETURN(
          SpecialTokenFrame inner,
          post_processor_from_json(j["processors"][i],
                                   where + ".processors[" + std::to_string(i) + "]"));
      frame.prefix.insert(frame.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
      frame.suffix.insert(frame.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
    return frame;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
          !j[key][1].is_number_integer()) {
        return Status::InvalidArgument(where + "." + key + ": expected [token, id]");
      }
    }
    frame.prefix.push_back(j["cls"][1].get<int32_t>());
    frame.suffix.push_back(j["sep"][1].get<int32_t>());
    return frame;
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
      (seen_sequence ? frame.suffix : frame.prefix).push_back(id.get<int32_t>());
    }
  }
  return frame;
}

bool takes_special_tokens_from_config(const std::string& tokenizer_class) {
  // The classes whose __init__ calls update_post_processor() in transformers.
  static constexpr std::string_view kClasses[] = {"LlamaTokenizer",     "LlamaTokenizerFast",
                                                  "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                                                  "GemmaTokenizer",     "GemmaTokenizerFast"};
  for (std::string_view c : kClasses) {
    if (tokenizer_class == c) return true;
  }
  return false;
}

}  // namespace quilt::engine
