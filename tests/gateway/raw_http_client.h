// A blocking HTTP/1.1 client on plain POSIX sockets, for tests that must see the wire itself.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace quilt::gateway::testing {

using namespace std::chrono_literals;

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // de-chunked when chunked

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One connection to 127.0.0.1:port. Every read takes a timeout so a broken server fails the test
// instead of hanging it.
class RawClient {
 public:
  // `receive_buffer` > 0: SO_RCVBUF, set before connecting (a client that reads little holds
  // little in its kernel, so the server's own bound on what it queues shows sooner).
  explicit RawClient(uint16_t port, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) close();
    int one = 1;
    if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool ok() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Half-close: no more bytes from us, but we still read.
  void shutdown_write() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Status line and headers; the body is left for read_body() / read_chunk().
  std::optional<RawResponse> read_header(std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    RawResponse res;
    std::string_view head(buf_.data(), end);
    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12) return std::nullopt;
    res.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    while (eol != std::string_view::npos) {
      head.remove_prefix(eol + 2);
      eol = head.find("\r\n");
      std::string_view line = head.substr(0, eol);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(line.substr(0, colon));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      res.headers[name] = std::string(value);
    }
    buf_.erase(0, end + 4);
    return res;
  }

  // One chunk of a chunked body: its data, "" for the last chunk, nullopt on error or timeout.
  std::optional<std::string> read_chunk(std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    const size_t size = std::strtoul(buf_.substr(0, eol).c_str(), nullptr, 16);
    const size_t need = eol + 2 + size + 2;
    while (buf_.size() < need) {
      if (!fill(deadline)) return std::nullopt;
    }
    if (buf_.compare(eol + 2 + size, 2, "\r\n") != 0) return std::nullopt;
    std::string data = buf_.substr(eol + 2, size);
    buf_.erase(0, need);
    return data;
  }

  // A whole response: Content-Length or chunked bodies.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = 5000ms) {
    auto res = read_header(timeout);
    if (!res) return std::nullopt;
    if (res->header("transfer-encoding") == "chunked") {
      for (;;) {
        auto chunk = read_chunk(timeout);
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        res->body += *chunk;
      }
      return res;
    }
    const size_t length = std::strtoul(res->header("content-length").c_str(), nullptr, 10);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buf_.size() < length) {
      if (!fill(deadline)) return std::nullopt;
    }
    res->body = buf_.substr(0, length);
    buf_.erase(0, length);
    return res;
  }

  // True when the server closes (EOF or reset) within `timeout`; data before that is dropped.
  bool wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) buf_.clear();
    return closed_;
  }

  const std::string& buffered() const { return buf_; }

 private:
  // Receives more bytes; false on EOF, error (closed_ set) or the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  bool closed_ = false;
};

}  // namespace quilt::gateway::testing
