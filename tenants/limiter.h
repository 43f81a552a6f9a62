// Per-tenant admission: concurrency, requests per minute and tokens per minute (token buckets).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "tenants/tenant_store.h"

namespace quilt::tenants {

// Thread-safe. Buckets refill continuously (capacity = the per-minute limit).
class Limiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Decision {
    bool admitted = false;
    int64_t retry_after_s = 0;  // when not admitted: seconds until it would be
    std::string reason;         // "max_concurrent", "requests_per_minute", "tokens_per_minute"
  };

  // Admits one request expected to use `tokens` tokens (prompt + max_tokens) or says why not.
  // An admitted request holds a concurrency slot until release(). A request whose `tokens`
  // exceed the whole tokens-per-minute bucket is admitted only when that bucket is full, and
  // leaves it in debt (later requests wait until it refills).
  Decision admit(const std::string& tenant_id, const Limits& limits, int64_t tokens,
                 Clock::time_point now = Clock::now());
  // Returns the concurrency slot and refunds the tokens reserved at admission but not used.
  void release(const std::string& tenant_id, int64_t reserved_tokens, int64_t used_tokens,
               Clock::time_point now = Clock::now());
  int64_t in_flight(const std::string& tenant_id) const;

  // One bucket as OpenAI's x-ratelimit-* headers describe it.
  struct BucketView {
    int64_t limit = 0;         // per minute
    int64_t remaining = 0;     // whole units left now (never below 0)
    double reset_seconds = 0;  // until the bucket is full again
  };
  // Only the limits that are set (per minute, > 0) have a view.
  struct Headroom {
    std::optional<BucketView> requests, tokens;
  };
  // The buckets of `tenant_id` under `limits` now; consumes nothing.
  Headroom headroom(const std::string& tenant_id, const Limits& limits,
                    Clock::time_point now = Clock::now());

 private:
  // One token bucket. `level` may go below zero: an admitted request larger than the whole
  // bucket leaves a debt that refills like any other deficit.
  struct Bucket {
    bool initialised = false;  // a bucket starts full the first time its limit is seen
    double capacity = 0;       // the per-minute limit last seen; 0 = unlimited
    double level = 0;
  };
  struct State {
    int64_t in_flight = 0;
    Bucket requests;
    Bucket tokens;
    Clock::time_point last;  // when the buckets were last refilled
  };
  // Brings both buckets to `now` under `limits` (a changed limit takes effect at once).
  static void refill(State& s, const Limits& limits, Clock::time_point now);
  mutable std::mutex mu_;
  std::map<std::string, State> state_;  // guarded by mu_
};

}  // namespace quilt::tenants
