// multipart/form-data parsing for adapter uploads, reading from a file (never all in memory).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::gateway {

struct MultipartPart {
  std::string name;            // form field name
  std::string filename;        // empty for plain fields
  std::string content_type;
  std::string value;           // small fields (≤ 1 MiB) held in memory
  std::filesystem::path file;  // large parts written to their own temp file (deleted with Form)
};

struct MultipartForm {
  std::map<std::string, MultipartPart> parts;  // by name
  std::shared_ptr<void> owner;                 // deletes the part files when the last copy goes
};

// `content_type` is the request's Content-Type header (boundary taken from it). Parts named in
// `file_parts` are written to files under `tmp_dir`, the others kept in memory. A malformed body
// is InvalidArgument; a Content-Type that is not multipart/form-data is UnsupportedMedia.
Result<MultipartForm> parse_multipart(const std::filesystem::path& body_file,
                                      const std::string& content_type,
                                      const std::vector<std::string>& file_parts,
                                      const std::filesystem::path& tmp_dir);

}  // namespace quilt::gateway
