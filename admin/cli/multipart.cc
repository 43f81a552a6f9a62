// multipart: the form body `quilt adapters push` sends (RFC 7578).
#include "admin/cli/multipart.h"

#include <random>

namespace quilt::admin::cli {

Result<MultipartBody> build_multipart(const std::vector<std::pair<std::string, std::string>>& fields,
                                      const std::vector<std::pair<std::string, std::filesystem::path>>& files) {
  std::random_device rd;
  const std::string boundary = "quilt-cli-" + std::to_string(rd()) + std::to_string(rd()) + std::to_string(rd());
  MultipartBody out;
  out.content_type = "multipart/form-data; boundary=" + boundary;
  std::string text;
  for (const auto& [name, value] : fields) {
    text += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n";
  }
  for (const auto& [name, path] : files) {
    auto piece = BodyPiece::file(path);
    if (!piece.ok()) return piece.status();
    text += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" +
            path.filename().string() + "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
    out.pieces.push_back(BodyPiece::bytes(std::move(text)));
    text.clear();
    out.pieces.push_back(std::move(piece).value());
    text = "\r\n";
  }
  text += "--" + boundary + "--\r\n";
  out.pieces.push_back(BodyPiece::bytes(std::move(text)));
  return out;
}

}  // namespace quilt::admin::cli
