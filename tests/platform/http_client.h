// The platform tests' HTTP client: requests built and answers read over the gateway tests'
// RawClient, failing loudly (an exception the test reports) instead of returning nothing.
#pragma once

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/gateway/raw_http_client.h"

namespace quilt::testing {

using HttpResponse = gateway::testing::RawResponse;

class HttpConnection {
 public:
  explicit HttpConnection(uint16_t port) : client_(port) {
    if (!client_.ok()) throw std::runtime_error("connect failed");
  }

  void send_request(const std::string& method, const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers) {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    if (!client_.send(req + "\r\n" + body)) throw std::runtime_error("send failed");
  }
  HttpResponse read_head() { return must(client_.read_header(kTimeout), "no response head"); }
  // The next piece of a chunked body ("" at the last chunk).
  std::string read_chunk() { return must(client_.read_chunk(kTimeout), "no chunk"); }
  HttpResponse read_response() { return must(client_.read_response(kTimeout), "no response"); }

  HttpResponse request(const std::string& method, const std::string& path, const std::string& body = "",
                       const std::map<std::string, std::string>& headers = {}) {
    send_request(method, path, body, headers);
    return read_response();
  }

 private:
  static constexpr std::chrono::milliseconds kTimeout{60000};
  template <typename T>
  static T must(std::optional<T> v, const char* what) {
    if (!v) throw std::runtime_error(what);
    return std::move(*v);
  }
  gateway::testing::RawClient client_;
};

// A multipart/form-data body; returns {content type, body}.
inline std::pair<std::string, std::string> multipart(
    const std::vector<std::pair<std::string, std::string>>& fields,
    const std::vector<std::pair<std::string, std::string>>& files) {
  const std::string boundary = "quiltTestBoundary7MA4YWxkTrZu0gW";
  std::string body;
  for (const auto& [name, value] : fields) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n";
  }
  for (const auto& [name, content] : files) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" + name +
            "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + "\r\n";
  }
  body += "--" + boundary + "--\r\n";
  return {"multipart/form-data; boundary=" + boundary, body};
}

}  // namespace quilt::testing
