// libFuzzer: a multipart/form-data upload body. Input: the Content-Type header's value, a
// newline, then the body.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "gateway/multipart.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("quilt-multipart-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t eol = input.find('\n');
  if (eol == std::string_view::npos) return 0;
  const std::string content_type(input.substr(0, eol));
  const std::string_view body = input.substr(eol + 1);
  const fs::path body_file = dir / "body";
  {
    std::ofstream out(body_file, std::ios::binary | std::ios::trunc);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
  }
  auto form = quilt::gateway::parse_multipart(body_file, content_type, {"weights"}, dir);
  if (form.ok()) {
    // A file part must exist as long as the form does, and hold what the body said.
    for (const auto& [name, part] : form->parts) {
      if (!part.file.empty() && !fs::exists(part.file)) __builtin_trap();
    }
  }
  return 0;
}
