// Uniquely named temporary files for request bodies and upload parts, and their removal.
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quilt::gateway {

// A new file under `dir`, created exclusively (O_EXCL, mode 0600) so that two requests never
// share one, written front to back. Not thread-safe; movable. The destructor closes the file but
// never removes it: removal belongs to a TempFileRemover, which outlives the writer.
class TempFileWriter {
 public:
  static Result<TempFileWriter> create(const std::filesystem::path& dir, std::string_view prefix);

  TempFileWriter(TempFileWriter&& other) noexcept;
  TempFileWriter& operator=(TempFileWriter&& other) noexcept;
  TempFileWriter(const TempFileWriter&) = delete;
  TempFileWriter& operator=(const TempFileWriter&) = delete;
  ~TempFileWriter();

  Status write(const char* data, size_t size);
  Status close();  // reports a failed final flush, which the destructor cannot
  const std::filesystem::path& path() const { return path_; }

 private:
  TempFileWriter(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;
};

// Removes its files when destroyed. Held through the shared_ptr<void> owners of
// HttpRequest::body_file_owner and MultipartForm::owner, so the last copy deletes the files.
struct TempFileRemover {
  std::vector<std::filesystem::path> paths;
  TempFileRemover() = default;
  TempFileRemover(const TempFileRemover&) = delete;
  TempFileRemover& operator=(const TempFileRemover&) = delete;
  ~TempFileRemover();
};

}  // namespace quilt::gateway
