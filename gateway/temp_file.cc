// Temporary files for request bodies and upload parts.
#include "gateway/temp_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

namespace quilt::gateway {
namespace {

// Random per process plus a counter: unique within the process, and unlikely to collide with
// another process's names; O_EXCL catches the rest and we retry.
std::string unique_suffix() {
  static const uint64_t kProcessSalt = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }();
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%d-%016llx-%llu", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(kProcessSalt), static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

Result<TempFileWriter> TempFileWriter::create(const std::filesystem::path& dir,
                                              std::string_view prefix) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::filesystem::path path = dir / (std::string(prefix) + unique_suffix());
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) return TempFileWriter(fd, std::move(path));
    if (errno != EEXIST) {
      return Status::IOError("cannot create " + path.string() + ": " + std::strerror(errno));
    }
  }
  return Status::IOError("cannot create a unique temporary file in " + dir.string());
}

TempFileWriter::TempFileWriter(TempFileWriter&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

TempFileWriter& TempFileWriter::operator=(TempFileWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

TempFileWriter::~TempFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status TempFileWriter::write(const char* data, size_t size) {
  if (fd_ < 0) return Status::IOError("write to a closed file " + path_.string());
  while (size > 0) {
    const ssize_t n = ::write(fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = "cannot write " + path_.string() + ": " + std::strerror(errno);
      // A full disk is the server's condition, not a fault in the request: 507, as storage says.
      if (errno == ENOSPC || errno == EDQUOT) return Status::InsufficientStorage(why);
      return Status::IOError(why);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status TempFileWriter::close() {
  if (fd_ < 0) return Status::OK();
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0)
    return Status::IOError("cannot close " + path_.string() + ": " + std::strerror(errno));
  return Status::OK();
}

TempFileRemover::~TempFileRemover() {
  for (const auto& path : paths) {
    std::error_code ec;  // best effort: a file already gone is fine
    std::filesystem::remove(path, ec);
  }
}

}  // namespace quilt::gateway
