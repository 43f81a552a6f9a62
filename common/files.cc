// read_file.
#include "common/files.h"

#include <fstream>
#include <sstream>

namespace quilt {

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!std::filesystem::exists(path)) return Status::NotFound(path.string() + ": no such file");
    return Status::IOError(path.string() + ": cannot open");
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::IOError(path.string() + ": read failed");
  return buffer.str();
}

}  // namespace quilt
