// The sha256 of a file, as `quilt adapters push` prints it for the weights it uploads.
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace quilt::admin::cli {

// Lower-case hex; IOError naming the file when it cannot be read.
Result<std::string> sha256_file(const std::filesystem::path& path);

}  // namespace quilt::admin::cli
