// Per-tenant admission: concurrency, requests per minute and tokens per minute (token buckets).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
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
  // An admitted request holds a concurrency slot until release().
  Decision admit(const std::string& tenant_id, const Limits& limits, int64_t tokens,
                 Clock::time_point now = Clock::now());
  // Returns the concurrency slot and refunds the tokens reserved at admission but not used.
  void release(const std::string& tenant_id, int64_t reserved_tokens, int64_t used_tokens,
               Clock::time_point now = Clock::now());
  int64_t in_flight(const std::string& tenant_id) const;

 private:
  struct State {
    int64_t in_flight = 0;
    double request_tokens = -1;  // -1: not initialised (starts full)
    double token_tokens = -1;
    Clock::time_point last;
  };
  mutable std::mutex mu_;
  std::map<std::string, State> state_;  // guarded by mu_
};

}  // namespace quilt::tenants
