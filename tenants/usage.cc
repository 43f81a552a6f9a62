// UsageLedger: counters per (tenant, adapter) in memory, written to Family::kUsage on flush().
#include "tenants/usage.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace quilt::tenants {
namespace {

using nlohmann::json;
using Key = std::pair<std::string, std::string>;

// Tenant ids are "t_" + hex, so the unit separator never occurs in one; adapter names may hold
// anything after it.
constexpr char kSeparator = '\x1f';

std::string record_key(const Key& k) { return k.first + kSeparator + k.second; }

std::string record_value(const UsageCounters& c) {
  return json{{"requests", c.requests},
              {"prompt_tokens", c.prompt_tokens},
              {"completion_tokens", c.completion_tokens}}
      .dump();
}

}  // namespace

Result<std::unique_ptr<UsageLedger>> UsageLedger::open(storage::Database& db) {
  std::unique_ptr<UsageLedger> ledger(new UsageLedger(db));
  QUILT_ASSIGN_OR_RETURN(auto records, db.scan(storage::Family::kUsage, ""));
  for (const auto& [key, value] : records) {
    const size_t sep = key.find(kSeparator);
    // Usage is billing data: a damaged record stops the start rather than restarting at zero.
    if (sep == std::string::npos) return Status::IOError("corrupt usage key (no separator)");
    UsageCounters c;
    try {
      const json j = json::parse(value);
      c.requests = j.at("requests").get<int64_t>();
      c.prompt_tokens = j.at("prompt_tokens").get<int64_t>();
      c.completion_tokens = j.at("completion_tokens").get<int64_t>();
    } catch (const json::exception& e) {
      return Status::IOError("corrupt usage record for tenant " + key.substr(0, sep) + ": " +
                             e.what());
    }
    ledger->counters_[{key.substr(0, sep), key.substr(sep + 1)}] = c;
  }
  return ledger;
}

UsageLedger::~UsageLedger() { static_cast<void>(flush()); }

void UsageLedger::record(const std::string& tenant_id, const std::string& adapter,
                         int64_t prompt_tokens, int64_t completion_tokens) {
  Key key{tenant_id, adapter};
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
      batch.put(storage::Family::kUsage, record_key(key), record_value(counters_[key]));
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
  return counters_;
}

}  // namespace quilt::tenants
