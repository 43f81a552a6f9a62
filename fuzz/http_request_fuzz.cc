// libFuzzer: bytes from a client socket. Beast's request parser under the gateway's limits, then
// the gateway's own reading of each head (target, query, headers, Transfer-Encoding) and route
// matching against the real route table, for every request pipelined in the input.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <atomic>
#include <memory>
#include <string_view>

#include "admin/admin_routes.h"
#include "gateway/openai_routes.h"
#include "gateway/platform.h"
#include "gateway/request_head.h"
#include "gateway/router.h"

namespace {

namespace http = boost::beast::http;

// The routes of a server with every route registered; handlers never run here.
const quilt::gateway::Router& routes() {
  static quilt::gateway::Platform platform;
  static std::atomic<bool> ready{true};
  static const auto router = [] {
    auto r = std::make_unique<quilt::gateway::Router>();
    quilt::gateway::add_openai_routes(*r, platform);
    quilt::admin::add_admin_routes(*r, platform);
    quilt::admin::add_health_routes(*r, platform, ready);
    return r;
  }();
  return *router;
}

constexpr uint32_t kHeaderLimit = 16 << 10;  // ServerOptions' defaults
constexpr uint64_t kBodyLimit = 8ull << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (int requests = 0; requests < 8 && !input.empty(); ++requests) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    parser.eager(true);
    boost::beast::error_code ec;
    size_t used = 0;
    while (!parser.is_done() && used < input.size()) {
      const size_t n = parser.put(boost::asio::buffer(input.data() + used, input.size() - used), ec);
      used += n;
      // The rest is an incomplete message: the server (Beast's read op) reads more bytes before
      // it calls put() again, and so must this. Calling put() again on the same bytes breaks the
      // parser's precondition (a Debug build's BOOST_ASSERT in parse_chunk_header says so).
      if (ec == http::error::need_more) break;
      if (ec) return 0;  // answered 400/413 and closed
    }
    if (!parser.is_header_done()) return 0;
    quilt::gateway::HttpRequest req;
    if (!quilt::gateway::read_request_head(parser.get().base(), req).ok()) return 0;
    auto match = routes().match(req.method, req.path);
    (void)match;
    if (!parser.is_done()) return 0;
    input.remove_prefix(used);
  }
  return 0;
}
