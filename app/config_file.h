// The reader behind `--config FILE`: a JSON object of settings (the documented format, keys are
// the flags without "--"), or CLI11's own TOML/INI for a file that does not start with "{".
#pragma once

#include <istream>
#include <vector>

#include <CLI/CLI.hpp>

namespace quilt::app {

class JsonOrTomlConfig : public CLI::ConfigBase {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

}  // namespace quilt::app
