// The demo model's config and the fixture adapters' folder, shared by the adapters/ tests.
#pragma once

#include <filesystem>

#include <gtest/gtest.h>

#include "engine/model/model_config.h"

namespace quilt::testing {

inline const std::filesystem::path kSource(QUILT_SOURCE_DIR);
inline const std::filesystem::path kAdapters = kSource / "examples/adapters";

// Loaded once; a failure to load fails the test that asked.
inline const engine::ModelConfig& tiny_llama() {
  static const engine::ModelConfig cfg = [] {
    auto r = engine::load_model_config(kSource / "examples/models/tiny-llama");
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : engine::ModelConfig{};
  }();
  return cfg;
}

}  // namespace quilt::testing
