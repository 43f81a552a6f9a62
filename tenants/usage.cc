// UsageLedger: counters per (tenant, adapter, day) in memory, written to Family::kUsage on flush().
#include "tenants/usage.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

namespace quilt::tenants {
namespace {

using nlohmann::json;

// Record keys are "YYYY-MM-DD" US tenant US adapter (US = the unit separator). Tenant ids are
// "t_" + hex and never hold it; adapter names may hold anything after it. Keys written before
// days were kept are tenant US adapter: a tenant id never parses as a date, which tells them apart.
constexpr char kSeparator = '\x1f';

std::string record_value(const UsageCounters& c) {
  return json{{"requests", c.requests},
              {"prompt_tokens", c.prompt_tokens},
              {"completion_tokens", c.completion_tokens}}
      .dump();
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, UTC).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

}  // namespace

std::string day_string(int64_t day) {
  int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(day, y, m, d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  return buf;
}

std::optional<int64_t> parse_day(std::string_view t) {
  if (t.size() != 10 || t[4] != '-' || t[7] != '-') return std::nullopt;
  auto digits = [&](size_t from, size_t n) -> std::optional<unsigned> {
    unsigned v = 0;
    for (size_t i = from; i < from + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(t[i] - '0');
    }
    return v;
  };
  auto y = digits(0, 4), m = digits(5, 2), d = digits(8, 2);
  if (!y || !m || !d || *y < 1970 || *m < 1 || *m > 12 || *d < 1) return std::nullopt;
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  if (*d > kDays[*m - 1] + (*m == 2 && leap ? 1 : 0)) return std::nullopt;
  return days_from_civil(*y, *m, *d);
}

Result<std::unique_ptr<UsageLedger>> UsageLedger::open(storage::Database& db) {
  std::unique_ptr<UsageLedger> ledger(new UsageLedger(db));
  QUILT_ASSIGN_OR_RETURN(auto records, db.scan(storage::Family::kUsage, ""));
  for (const auto& [key, value] : records) {
    size_t sep = key.find(kSeparator);
    // Usage is billing data: a damaged record stops the start rather than restarting at zero.
    if (sep == std::string::npos) return Status::IOError("corrupt usage key (no separator)");
    int64_t day = kNoDay;
    size_t tenant_at = 0;
    if (std::optional<int64_t> d = parse_day(std::string_view(key).substr(0, sep))) {
      day = *d;
      tenant_at = sep + 1;
      sep = key.find(kSeparator, tenant_at);
      if (sep == std::string::npos) return Status::IOError("corrupt usage key (no adapter)");
    }
    const std::string tenant = key.substr(tenant_at, sep - tenant_at);
    UsageCounters c;
    try {
      const json j = json::parse(value);
      c.requests = j.at("requests").get<int64_t>();
      c.prompt_tokens = j.at("prompt_tokens").get<int64_t>();
      c.completion_tokens = j.at("completion_tokens").get<int64_t>();
    } catch (const json::exception& e) {
      return Status::IOError("corrupt usage record for tenant " + tenant + ": " + e.what());
    }
    ledger->counters_[{tenant, key.substr(sep + 1), day}] = c;
  }
  return ledger;
}

UsageLedger::~UsageLedger() { static_cast<void>(flush()); }

void UsageLedger::record(const std::string& tenant_id, const std::string& adapter,
                         int64_t prompt_tokens, int64_t completion_tokens, int64_t unix_seconds) {
  if (unix_seconds == 0) unix_seconds = now_seconds();
  Key key{tenant_id, adapter, floor_div(unix_seconds, kSecondsPerDay)};
  std::lock_guard lock(mu_);
  UsageCounters& c = counters_[key];
  c.requests += 1;
  c.prompt_tokens += std::max<int64_t>(prompt_tokens, 0);
  c.completion_tokens += std::max<int64_t>(completion_tokens, 0);
  dirty_[std::move(key)] = true;
}

Status UsageLedger::flush() {
  std::lock_guard flush_lock(flush_mu_);
  // Take the dirty set and the values to write under mu_, then write without it so that record()
  // (on every request) never waits for the disk.
  storage::WriteBatch batch;
  std::vector<Key> taken;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, is_dirty] : dirty_) {
      if (!is_dirty) continue;
      const auto& [tenant, adapter, day] = key;
      // Only record() dirties a key, and it always has a day.
      std::string record_key = day_string(day) + kSeparator + tenant + kSeparator + adapter;
      batch.put(storage::Family::kUsage, record_key, record_value(counters_[key]));
      taken.push_back(key);
    }
    dirty_.clear();
  }
  if (taken.empty()) return Status::OK();
  // Unsynced: a process crash loses nothing (the WAL is in the OS), an OS crash at most the last
  // writes; usage is not worth an fsync per flush.
  Status s = db_.write(batch, /*sync=*/false);
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    for (auto& key : taken) dirty_[std::move(key)] = true;  // the next flush tries again
    return s.with_context("usage flush");
  }
  return Status::OK();
}

std::map<std::pair<std::string, std::string>, UsageCounters> UsageLedger::snapshot() const {
  std::lock_guard lock(mu_);
  std::map<std::pair<std::string, std::string>, UsageCounters> out;
  for (const auto& [key, c] : counters_) {
    UsageCounters& sum = out[{std::get<0>(key), std::get<1>(key)}];
    sum.requests += c.requests;
    sum.prompt_tokens += c.prompt_tokens;
    sum.completion_tokens += c.completion_tokens;
  }
  return out;
}

std::vector<UsageRow> UsageLedger::query(const UsageQuery& q) const {
  std::map<Key, UsageCounters> sums;  // keyed with kNoDay when not grouped by day
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, c] : counters_) {
      const auto& [tenant, adapter, day] = key;
      if (!q.tenant.empty() && tenant != q.tenant) continue;
      if (q.adapter && adapter != *q.adapter) continue;
      if ((q.from_day || q.to_day) && day == kNoDay) continue;
      if (q.from_day && day < *q.from_day) continue;
      if (q.to_day && day > *q.to_day) continue;
      UsageCounters& sum = sums[{tenant, adapter, q.by_day ? day : kNoDay}];
      sum.requests += c.requests;
      sum.prompt_tokens += c.prompt_tokens;
      sum.completion_tokens += c.completion_tokens;
    }
  }
  std::vector<UsageRow> rows;
  rows.reserve(sums.size());
  for (const auto& [key, c] : sums) {
    rows.push_back(UsageRow{std::get<0>(key), std::get<1>(key), std::get<2>(key), c});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const UsageRow& a, const UsageRow& b) {
    return std::tie(a.day, a.tenant, a.adapter) < std::tie(b.day, b.tenant, b.adapter);
  });
  return rows;
}

}  // namespace quilt::tenants
