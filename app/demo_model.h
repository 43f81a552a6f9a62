// Where the bundled demo model is: beside the source tree the binary was built from, or ./examples.
#pragma once

#include <filesystem>

namespace quilt::app {

inline std::filesystem::path demo_model_dir() {
  const std::filesystem::path built(QUILT_DEMO_MODEL_DIR);
  if (std::filesystem::exists(built / "config.json")) return built;
  return std::filesystem::path("examples/models/tiny-llama");
}

}  // namespace quilt::app
