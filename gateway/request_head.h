// From a parsed HTTP request head to what a handler sees: method, path, query, headers.
#pragma once

#include <boost/beast/http/message.hpp>

#include "common/status.h"
#include "gateway/http_types.h"

namespace quilt::gateway {

// Fills `req`'s method, path, decoded query and headers (names lower-cased, repeated fields
// joined with ", ") from `head`. A Transfer-Encoding other than exactly "chunked" is
// InvalidArgument: any other coding leaves the body's length unknown, and reading it as empty
// would parse the body as the next request (request smuggling; RFC 9112 §6.3 says 400 and close).
// Pure: no I/O, thread-safe.
Status read_request_head(const boost::beast::http::request_header<>& head, HttpRequest& req);

}  // namespace quilt::gateway
