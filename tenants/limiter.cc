// Limiter: a concurrency count and two continuously refilled token buckets per tenant.
#include "tenants/limiter.h"

#include <algorithm>
#include <cmath>

namespace quilt::tenants {
namespace {

// Refill arithmetic is in doubles; this absorbs rounding so that a bucket refilled for exactly
// the right time counts as having enough.
constexpr double kEpsilon = 1e-9;

void refill_bucket(Limiter::Clock::duration elapsed, int64_t limit, double& level, double& capacity,
                   bool& initialised) {
  if (limit <= 0) {  // unlimited: if a limit is set later, its bucket starts full
    initialised = false;
    capacity = 0;
    return;
  }
  capacity = static_cast<double>(limit);
  if (!initialised) {
    initialised = true;
    level = capacity;
    return;
  }
  const double seconds = std::chrono::duration<double>(elapsed).count();
  // min() also applies a lowered limit at once.
  level = std::min(capacity, level + seconds * capacity / 60.0);
}

// Whole seconds until `level` reaches `need` at capacity/60 per second; at least 1, so a client
// told to retry never retries at once.
int64_t seconds_until(double level, double need, double capacity) {
  const double seconds = (need - level) / (capacity / 60.0);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(seconds - kEpsilon)));
}

}  // namespace

void Limiter::refill(State& s, const Limits& limits, Clock::time_point now) {
  // Time points may arrive out of order from concurrent callers: never refill for negative time,
  // and never move `last` backwards (that would refill the same interval twice).
  const Clock::duration elapsed = now > s.last ? now - s.last : Clock::duration::zero();
  s.last = std::max(s.last, now);
  refill_bucket(elapsed, limits.requests_per_minute, s.requests.level, s.requests.capacity,
                s.requests.initialised);
  refill_bucket(elapsed, limits.tokens_per_minute, s.tokens.level, s.tokens.capacity,
                s.tokens.initialised);
}

Limiter::Decision Limiter::admit(const std::string& tenant_id, const Limits& limits, int64_t tokens,
                                 Clock::time_point now) {
  tokens = std::max<int64_t>(tokens, 0);
  std::lock_guard lock(mu_);
  State& s = state_[tenant_id];
  refill(s, limits, now);
  Decision d;
  // Checked in this order, and nothing is consumed until all three pass, so a refused request
  // costs the tenant nothing.
  if (limits.max_concurrent > 0 && s.in_flight >= limits.max_concurrent) {
    d.reason = "max_concurrent";
    d.retry_after_s = 1;  // a slot frees when some request ends, which cannot be predicted
    return d;
  }
  if (s.requests.initialised && s.requests.level + kEpsilon < 1.0) {
    d.reason = "requests_per_minute";
    d.retry_after_s = seconds_until(s.requests.level, 1.0, s.requests.capacity);
    return d;
  }
  if (s.tokens.initialised) {
    // A request larger than the whole bucket could never fit: it is admitted when the bucket is
    // full and leaves the bucket in debt, so the tenant still averages its tokens per minute.
    const double need = std::min(static_cast<double>(tokens), s.tokens.capacity);
    if (s.tokens.level + kEpsilon < need) {
      d.reason = "tokens_per_minute";
      d.retry_after_s = seconds_until(s.tokens.level, need, s.tokens.capacity);
      return d;
    }
  }
  if (s.requests.initialised) s.requests.level -= 1.0;
  if (s.tokens.initialised) s.tokens.level -= static_cast<double>(tokens);
  ++s.in_flight;
  d.admitted = true;
  return d;
}

void Limiter::release(const std::string& tenant_id, int64_t reserved_tokens, int64_t used_tokens,
                      Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = state_.find(tenant_id);
  if (it == state_.end()) return;
  State& s = it->second;
  // Refill under the limits seen at the last admit (release is not given them).
  Limits seen;
  seen.requests_per_minute = static_cast<int64_t>(s.requests.capacity);
  seen.tokens_per_minute = static_cast<int64_t>(s.tokens.capacity);
  refill(s, seen, now);
  if (s.in_flight > 0) --s.in_flight;
  if (s.tokens.initialised) {
    // Refund what was reserved and not used; a request that used more than it reserved is charged
    // the difference. Never above capacity: a refund is not a credit.
    const int64_t refund =
        std::max<int64_t>(reserved_tokens, 0) - std::max<int64_t>(used_tokens, 0);
    s.tokens.level = std::min(s.tokens.capacity, s.tokens.level + static_cast<double>(refund));
  }
}

Limiter::Headroom Limiter::headroom(const std::string& tenant_id, const Limits& limits,
                                    Clock::time_point now) {
  auto view = [](const Bucket& b) {
    BucketView v;
    v.limit = static_cast<int64_t>(b.capacity);
    v.remaining = std::max<int64_t>(0, static_cast<int64_t>(std::floor(b.level + kEpsilon)));
    v.reset_seconds = std::max(0.0, (b.capacity - b.level) / (b.capacity / 60.0));
    return v;
  };
  Headroom h;
  if (limits.requests_per_minute <= 0 && limits.tokens_per_minute <= 0) return h;
  std::lock_guard lock(mu_);
  State& s = state_[tenant_id];
  refill(s, limits, now);
  if (s.requests.initialised) h.requests = view(s.requests);
  if (s.tokens.initialised) h.tokens = view(s.tokens);
  return h;
}

int64_t Limiter::in_flight(const std::string& tenant_id) const {
  std::lock_guard lock(mu_);
  auto it = state_.find(tenant_id);
  return it == state_.end() ? 0 : it->second.in_flight;
}

}  // namespace quilt::tenants
