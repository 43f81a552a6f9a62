// config_file: JSON settings files read into CLI11's config items.
#include "app/config_file.h"

#include <iterator>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace quilt::app {

std::vector<CLI::ConfigItem> JsonOrTomlConfig::from_config(std::istream& input) const {
  const std::string text{std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    std::istringstream toml(text);
    return CLI::ConfigBase::from_config(toml);
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw CLI::FileError("--config: the file starts with '{' but is not a JSON object");
  }
  std::vector<CLI::ConfigItem> items;
  for (const auto& [key, value] : j.items()) {
    CLI::ConfigItem item;
    item.name = key;
    // Strings as they are; numbers and booleans as JSON writes them ("8", "0.5", "true").
    item.inputs = {value.is_string() ? value.get<std::string>() : value.dump()};
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace quilt::app
