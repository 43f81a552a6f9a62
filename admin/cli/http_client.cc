// http_client: requests written over a blocking Boost.Asio socket, answers read by Boost.Beast.
#include "admin/cli/http_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <system_error>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace quilt::admin::cli {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kChunkBytes = 256 << 10;
constexpr uint64_t kMaxReplyBytes = 256ull << 20;
constexpr int kSocketTimeoutS = 600;  // a stalled server, not a slow upload: per send/recv call

}  // namespace

Result<ServerUrl> parse_server_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    return Status::InvalidArgument("server URL '" + url + "': only http:// URLs are supported");
  }
  std::string rest = url.substr(scheme.size());
  ServerUrl out;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    out.base_path = rest.substr(slash);
    rest.resize(slash);
    while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  }
  std::string host = rest;
  if (!rest.empty() && rest[0] == '[') {  // [::1]:8080
    const size_t close = rest.find(']');
    if (close == std::string::npos) return Status::InvalidArgument("server URL '" + url + "': unclosed '['");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Status::InvalidArgument("server URL '" + url + "': bad port");
      out.port = rest.substr(close + 2);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    out.port = rest.substr(colon + 1);
  }
  if (host.empty()) return Status::InvalidArgument("server URL '" + url + "': no host");
  if (out.port.empty() || out.port.size() > 5 || out.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(out.port) > 65535) {
    return Status::InvalidArgument("server URL '" + url + "': bad port '" + out.port + "'");
  }
  out.host = host;
  return out;
}

BodyPiece BodyPiece::bytes(std::string data) {
  BodyPiece p;
  p.size = data.size();
  p.data = std::move(data);
  return p;
}

Result<BodyPiece> BodyPiece::file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || !std::filesystem::is_regular_file(path)) {
    return Status::NotFound(path.string() + ": cannot read (" + (ec ? ec.message() : "not a file") + ")");
  }
  BodyPiece p;
  p.path = path;
  p.size = size;
  return p;
}

HttpClient::HttpClient(ServerUrl url, std::string key) : url_(std::move(url)), key_(std::move(key)) {}

Result<HttpReply> HttpClient::send(const std::string& method, const std::string& target,
                                   std::vector<BodyPiece> body, const std::string& content_type,
                                   const Progress& progress) {
  const std::string where = "http://" + url_.host + ":" + url_.port;
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(url_.host, url_.port, ec);
  if (ec) return Status::Unavailable("cannot resolve " + url_.host + ": " + ec.message());
  asio::connect(socket, endpoints, ec);
  if (ec) return Status::Unavailable("cannot connect to " + where + ": " + ec.message());
  timeval tv{kSocketTimeoutS, 0};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  uint64_t total = 0;
  for (const BodyPiece& p : body) total += p.size;
  std::string head = method + " " + url_.base_path + target + " HTTP/1.1\r\nHost: " + url_.host + ":" + url_.port +
                     "\r\nUser-Agent: quilt-cli\r\nAccept: application/json\r\nConnection: close\r\n";
  if (!key_.empty()) head += "Authorization: Bearer " + key_ + "\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  if (total > 0 || method == "POST" || method == "PUT" || method == "PATCH") {
    head += "Content-Length: " + std::to_string(total) + "\r\n";
  }
  head += "\r\n";

  // A server may answer early (401, 413) and close while the body is still going out; the answer
  // is then read below, and only a connection that gives no answer at all is an error.
  bool send_failed = false;
  std::string send_error;
  auto write = [&](const char* data, size_t n) {
    if (send_failed) return;
    asio::write(socket, asio::buffer(data, n), ec);
    if (ec) {
      send_failed = true;
      send_error = ec.message();
    }
  };
  write(head.data(), head.size());
  uint64_t sent = 0;
  std::string chunk(kChunkBytes, '\0');
  for (const BodyPiece& p : body) {
    if (send_failed) break;
    if (p.path.empty()) {
      for (size_t at = 0; at < p.data.size() && !send_failed; at += kChunkBytes) {
        const size_t n = std::min(kChunkBytes, p.data.size() - at);
        write(p.data.data() + at, n);
        sent += n;
        if (progress) progress(sent, total);
      }
      continue;
    }
    std::ifstream in(p.path, std::ios::binary);
    uint64_t left = p.size;
    while (left > 0 && !send_failed) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, left));
      if (!in.read(chunk.data(), static_cast<std::streamsize>(want))) {
        return Status::IOError(p.path.string() + ": read failed while uploading");
      }
      write(chunk.data(), want);
      left -= want;
      sent += want;
      if (progress) progress(sent, total);
    }
  }

  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBytes);
  http::read(socket, buffer, parser, ec);
  if (ec) {
    return Status::Unavailable("no answer from " + where + ": " +
                               (send_failed ? "sending failed (" + send_error + ")" : ec.message()));
  }
  HttpReply reply;
  reply.status = static_cast<int>(parser.get().result_int());
  reply.body = std::move(parser.get().body());
  return reply;
}

std::string url_encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace quilt::admin::cli
