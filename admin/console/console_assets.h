// The web console's files, embedded in the binary at build time (see embed_assets.cmake).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace quilt::admin {

struct ConsoleAsset {
  const char* name;           // file name under admin/console/, e.g. "console.js"
  const unsigned char* data;  // static storage
  size_t size;

  std::string_view bytes() const { return {reinterpret_cast<const char*>(data), size}; }
};

// Every embedded asset. Thread-safe; the data lives for the whole program.
const std::vector<ConsoleAsset>& console_assets();

}  // namespace quilt::admin
