// A small synchronous HTTP/1.1 client for the admin commands: one request per connection, plain
// http:// only, bodies sent from memory or streamed from files with a progress callback.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::admin::cli {

// Where the server is: http://host[:port][/base]. The base path is prefixed to every route.
struct ServerUrl {
  std::string host;
  std::string port = "80";
  std::string base_path;  // "" or "/prefix" (no trailing slash)
};

// Parses `url`; https:// and anything but http:// is an InvalidArgument naming the URL.
Result<ServerUrl> parse_server_url(const std::string& url);

// One piece of a request body: bytes held in memory, or a file read as it is sent.
struct BodyPiece {
  static BodyPiece bytes(std::string data);
  static Result<BodyPiece> file(const std::filesystem::path& path);  // NotFound when unreadable
  std::string data;
  std::filesystem::path path;  // non-empty: send this file's bytes instead of data
  uint64_t size = 0;
};

struct HttpReply {
  int status = 0;
  std::string body;
};

// Called as the body goes out: bytes sent so far and the total.
using Progress = std::function<void(uint64_t sent, uint64_t total)>;

class HttpClient {
 public:
  // `key` goes in "Authorization: Bearer" when non-empty.
  HttpClient(ServerUrl url, std::string key);

  // Sends one request to base_path + target and reads the whole answer. A server that cannot be
  // reached (refused, unknown host, connection dropped) is Unavailable; a file piece that cannot be
  // read, IOError. Any HTTP status is a reply, not an error.
  Result<HttpReply> send(const std::string& method, const std::string& target, std::vector<BodyPiece> body = {},
                         const std::string& content_type = "", const Progress& progress = {});

 private:
  ServerUrl url_;
  std::string key_;
};

// Percent-encodes `s` for a path segment or a query value.
std::string url_encode(const std::string& s);

}  // namespace quilt::admin::cli
