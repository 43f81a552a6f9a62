// multipart/form-data bodies for uploads: small fields in memory, files streamed from disk.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "admin/cli/http_client.h"

namespace quilt::admin::cli {

struct MultipartBody {
  std::string content_type;  // multipart/form-data; boundary=...
  std::vector<BodyPiece> pieces;
};

// `fields` are name → value; `files` are part name → path (sent with a filename). A file that
// cannot be read is NotFound naming it.
Result<MultipartBody> build_multipart(const std::vector<std::pair<std::string, std::string>>& fields,
                                      const std::vector<std::pair<std::string, std::filesystem::path>>& files);

}  // namespace quilt::admin::cli
