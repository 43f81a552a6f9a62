// Routes (method, path pattern) to handlers; knows nothing of sockets.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gateway/http_types.h"

namespace quilt::gateway {

class Router {
 public:
  // `pattern` segments in braces capture a path parameter: "/v1/adapters/{adapter}/completions".
  void add(const std::string& method, const std::string& pattern, Handler handler,
           BodyMode body = BodyMode::kMemory);

  struct Match {
    const Handler* handler = nullptr;  // null: no route
    BodyMode body = BodyMode::kMemory;
    bool path_known = false;           // the path exists with another method: 405, else 404
    std::map<std::string, std::string> params;  // percent-decoded
    std::vector<std::string> allowed_methods;   // when path_known: for the 405's Allow header
    std::string pattern;                        // the matched route's pattern (access log)
  };
  // Segments compare after percent-decoding; empty segments (a trailing or doubled slash) are
  // ignored. Routes are tried in the order added; the first that fits wins. Thread-safe once
  // every route has been added (the server only reads).
  Match match(const std::string& method, const std::string& path) const;
  // Every route as (method, pattern), in the order added (tests check them against the OpenAPI
  // document).
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
    BodyMode body;
  };
  std::vector<Route> routes_;
};

}  // namespace quilt::gateway
