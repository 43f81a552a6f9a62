// openai_duration, rate_limit_headers and the writer that adds them.
#include "gateway/rate_limit_headers.h"

#include <cmath>
#include <cstdio>

namespace quilt::gateway {
namespace {

// Forwards to the real writer, adding the headers as the response starts.
class RateLimitWriter final : public ForwardingWriter {
 public:
  RateLimitWriter(Platform& p, tenants::Tenant tenant, std::shared_ptr<ResponseWriter> inner)
      : ForwardingWriter(std::move(inner)), p_(p), tenant_(std::move(tenant)) {}

 private:
  void on_start(int, std::vector<std::pair<std::string, std::string>>& headers) override {
    for (auto& h : rate_limit_headers(p_.limiter->headroom(tenant_.id, tenant_.limits)))
      headers.push_back(std::move(h));
  }
  Platform& p_;
  const tenants::Tenant tenant_;
};

}  // namespace

std::string openai_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds <= 0) return "0s";
  const auto ms = static_cast<int64_t>(std::ceil(seconds * 1000.0 - 1e-6));
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::string out;
  const int64_t hours = ms / 3600000, minutes = ms / 60000 % 60, rest_ms = ms % 60000;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += std::to_string(rest_ms / 1000);
  if (int64_t frac = rest_ms % 1000; frac != 0) {
    char buf[8];
    std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(frac));
    std::string f = buf;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "s";
}

std::vector<std::pair<std::string, std::string>> rate_limit_headers(
    const tenants::Limiter::Headroom& h) {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&out](const char* what, const tenants::Limiter::BucketView& v) {
    out.emplace_back(std::string("x-ratelimit-limit-") + what, std::to_string(v.limit));
    out.emplace_back(std::string("x-ratelimit-remaining-") + what, std::to_string(v.remaining));
    out.emplace_back(std::string("x-ratelimit-reset-") + what, openai_duration(v.reset_seconds));
  };
  if (h.requests) add("requests", *h.requests);
  if (h.tokens) add("tokens", *h.tokens);
  return out;
}

std::shared_ptr<ResponseWriter> with_rate_limit_headers(Platform& p, const tenants::Tenant& tenant,
                                                        std::shared_ptr<ResponseWriter> w) {
  if (tenant.limits.requests_per_minute <= 0 && tenant.limits.tokens_per_minute <= 0) return w;
  return std::make_shared<RateLimitWriter>(p, tenant, std::move(w));
}

}  // namespace quilt::gateway
