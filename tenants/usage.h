// Token usage per tenant, adapter and UTC day, persisted.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "storage/database.h"

namespace quilt::tenants {

struct UsageCounters {
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// Days are counted from 1970-01-01 (UTC), day 0.
inline constexpr int64_t kSecondsPerDay = 86400;
// Usage recorded before the ledger kept days (one total per tenant and adapter) has this day.
inline constexpr int64_t kNoDay = INT64_MIN;
// "YYYY-MM-DD" of a day number.
std::string day_string(int64_t day);
// The day number of "YYYY-MM-DD" (a real calendar date, years 1970..9999); nullopt otherwise.
std::optional<int64_t> parse_day(std::string_view text);

// What GET /admin/v1/usage asks for. Empty strings match everything; days are inclusive.
struct UsageQuery {
  std::string tenant;
  std::optional<std::string> adapter;  // "" = the base model
  std::optional<int64_t> from_day, to_day;
  bool by_day = false;  // one row per day, else one per (tenant, adapter) over the whole range
};

struct UsageRow {
  std::string tenant;
  std::string adapter;  // "" for the base model
  int64_t day = kNoDay;  // by_day rows only; kNoDay for usage recorded before days were kept
  UsageCounters counters;
};

// Thread-safe. record() is cheap (memory); flush() writes changed counters in one batch.
class UsageLedger {
 public:
  // Loads persisted counters. `db` must outlive the ledger.
  static Result<std::unique_ptr<UsageLedger>> open(storage::Database& db);
  // Flushes what is still dirty (best effort: an error here is lost; call flush() to see it).
  ~UsageLedger();
  // Counts one request on the UTC day of `unix_seconds` (0 = now).
  void record(const std::string& tenant_id, const std::string& adapter, int64_t prompt_tokens,
              int64_t completion_tokens, int64_t unix_seconds = 0);
  Status flush();
  // Totals over every day, keyed by (tenant id, adapter name; "" for the base model).
  std::map<std::pair<std::string, std::string>, UsageCounters> snapshot() const;
  // Rows sorted by (day, tenant, adapter). Usage from before days were kept matches only a query
  // without from_day and to_day.
  std::vector<UsageRow> query(const UsageQuery& q) const;

 private:
  using Key = std::tuple<std::string, std::string, int64_t>;  // (tenant, adapter, day)
  explicit UsageLedger(storage::Database& db) : db_(db) {}
  storage::Database& db_;
  // Serialises flushes, so an older snapshot of a counter is never written after a newer one.
  std::mutex flush_mu_;
  mutable std::mutex mu_;
  std::map<Key, UsageCounters> counters_;  // guarded by mu_
  std::map<Key, bool> dirty_;              // guarded by mu_
};

}  // namespace quilt::tenants
