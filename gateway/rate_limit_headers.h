// OpenAI's x-ratelimit-* response headers from the tenant's limiter buckets.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/http_types.h"
#include "gateway/platform.h"

namespace quilt::gateway {

// A duration the way OpenAI (Go's time.Duration) writes it: "17ms", "1s", "6m0s", "1m30.5s".
std::string openai_duration(double seconds);

// x-ratelimit-{limit,remaining,reset}-{requests,tokens}, for each limit that is set.
std::vector<std::pair<std::string, std::string>> rate_limit_headers(
    const tenants::Limiter::Headroom& h);

// `w`, adding the headers to whatever response it sends (the buckets as they are when the
// response starts); `w` itself when the tenant has no per-minute limit.
std::shared_ptr<ResponseWriter> with_rate_limit_headers(Platform& p, const tenants::Tenant& tenant,
                                                        std::shared_ptr<ResponseWriter> w);

}  // namespace quilt::gateway
