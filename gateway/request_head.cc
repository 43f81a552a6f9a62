// read_request_head: the request head's fields as HttpRequest holds them, and the TE check.
#include "gateway/request_head.h"

#include <boost/beast/core/string.hpp>
#include <cctype>
#include <string_view>

#include "gateway/url_decode.h"

namespace quilt::gateway {

Status read_request_head(const boost::beast::http::request_header<>& head, HttpRequest& req) {
  req.method = std::string(head.method_string());
  const std::string_view target(head.target().data(), head.target().size());
  const size_t question = target.find('?');
  req.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) req.query = parse_query(target.substr(question + 1));
  for (const auto& field : head) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, inserted] = req.headers.emplace(std::move(name), std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());  // RFC 9110 list semantics
  }
  if (auto te = req.headers.find("transfer-encoding"); te != req.headers.end()) {
    std::string_view v = te->second;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (!boost::beast::iequals(boost::beast::string_view(v.data(), v.size()), "chunked")) {
      return Status::InvalidArgument("Transfer-Encoding '" + te->second +
                                     "' is not supported: only chunked");
    }
  }
  return Status::OK();
}

}  // namespace quilt::gateway
