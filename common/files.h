// Whole-file reads with errors as values.
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace quilt {

// The file's bytes. NotFound when it does not exist, IOError when it cannot be read; both name it.
Result<std::string> read_file(const std::filesystem::path& path);

}  // namespace quilt
