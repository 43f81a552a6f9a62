// Router: (method, path pattern) → handler, with {param} segments.
#include "gateway/router.h"

#include <string_view>
#include <utility>

#include "gateway/url_decode.h"

namespace quilt::gateway {
namespace {

// Empty segments are dropped so that "/v1/models/" and "/v1//models" find "/v1/models".
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::add(const std::string& method, const std::string& pattern, Handler handler,
                 BodyMode body) {
  Route route{method, pattern, {}, std::move(handler), body};
  for (std::string_view segment : split_path(pattern)) route.segments.emplace_back(segment);
  routes_.push_back(std::move(route));
}

Router::Match Router::match(const std::string& method, const std::string& path) const {
  // Decode once per request rather than once per route.
  std::vector<std::string> segments;
  for (std::string_view raw : split_path(path)) segments.push_back(percent_decode(raw, false));

  Match result;
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool fits = true;
    for (size_t i = 0; i < segments.size() && fits; ++i) {
      const std::string& want = route.segments[i];
      if (is_param(want)) {
        // split_path never yields an empty segment, so a parameter is never empty.
        params[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        fits = want == segments[i];
      }
    }
    if (!fits) continue;
    if (route.method == method) {
      result.handler = &route.handler;
      result.body = route.body;
      result.params = std::move(params);
      result.pattern = route.pattern;
      return result;
    }
    result.path_known = true;
    result.allowed_methods.push_back(route.method);
  }
  return result;
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Route& r : routes_) out.emplace_back(r.method, r.pattern);
  return out;
}

}  // namespace quilt::gateway
