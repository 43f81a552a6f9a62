// Typed, error-naming access to config.json fields, shared by model_config.cc and rope_config.cc
// (internal to engine/model).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "engine/model/model_config.h"

namespace quilt::engine::config_internal {

using json = nlohmann::json;

// Typed access to one JSON object; every error names the file and the field. Absent and null
// fields read as nullopt, because Hugging Face writes `null` for "use the default".
class Fields {
 public:
  Fields(const json& obj, const std::string& source, std::string prefix = "")
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  const json* raw(std::string_view key) const {
    auto it = obj_.find(key);
    return (it == obj_.end() || it->is_null()) ? nullptr : &*it;
  }
  bool has(std::string_view key) const { return raw(key) != nullptr; }
  // The key is written, even as null (null often means "off" where absence means the default).
  bool present(std::string_view key) const { return obj_.find(key) != obj_.end(); }

  Result<std::optional<int64_t>> opt_int(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<int64_t>();
    if (!v->is_number_integer()) return error(key, "must be an integer");
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return error(key, "is out of range");
    }
    return std::optional<int64_t>(v->get<int64_t>());
  }
  Result<int64_t> req_int(std::string_view key) const {
    QUILT_ASSIGN_OR_RETURN(auto v, opt_int(key));
    if (!v) return error(key, "is required");
    return *v;
  }
  Result<std::optional<double>> opt_double(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<double>();
    if (!v->is_number()) return error(key, "must be a number");
    return std::optional<double>(v->get<double>());
  }
  Result<double> req_double(std::string_view key) const {
    QUILT_ASSIGN_OR_RETURN(auto v, opt_double(key));
    if (!v) return error(key, "is required");
    return *v;
  }
  Result<std::optional<bool>> opt_bool(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<bool>();
    if (!v->is_boolean()) return error(key, "must be true or false");
    return std::optional<bool>(v->get<bool>());
  }
  Result<std::optional<std::string>> opt_string(std::string_view key) const {
    const json* v = raw(key);
    if (v == nullptr) return std::optional<std::string>();
    if (!v->is_string()) return error(key, "must be a string");
    return std::optional<std::string>(v->get<std::string>());
  }

  std::string field(std::string_view key) const { return prefix_ + std::string(key); }
  Status error(std::string_view key, std::string_view why) const {
    return Status::InvalidArgument(source_ + ": " + field(key) + " " + std::string(why));
  }
  Status unsupported(std::string_view key, std::string_view why) const {
    return Status::Unimplemented(source_ + ": " + field(key) + " " + std::string(why));
  }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

inline Result<json> parse_object(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(source + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument(source + ": not a JSON object");
  return j;
}

// rope_theta / rope_scaling (old layout) or rope_parameters (transformers >= 5) into cfg->rope
// and, for Gemma 3 (`per_layer_type_ok`), cfg->local_rope; rope_config.cc.
Status parse_rope(const Fields& top, const std::string& source, bool per_layer_type_ok,
                  double default_theta, double default_local_theta, ModelConfig* cfg);

}  // namespace quilt::engine::config_internal
