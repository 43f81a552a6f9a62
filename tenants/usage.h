// Token usage per tenant and adapter, persisted.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "storage/database.h"

namespace quilt::tenants {

struct UsageCounters {
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// Thread-safe. record() is cheap (memory); flush() writes changed counters in one batch.
class UsageLedger {
 public:
  // Loads persisted counters. `db` must outlive the ledger.
  static Result<std::unique_ptr<UsageLedger>> open(storage::Database& db);
  // Flushes what is still dirty (best effort: an error here is lost; call flush() to see it).
  ~UsageLedger();
  void record(const std::string& tenant_id, const std::string& adapter, int64_t prompt_tokens,
              int64_t completion_tokens);
  Status flush();
  // Keyed by (tenant id, adapter name; "" for the base model).
  std::map<std::pair<std::string, std::string>, UsageCounters> snapshot() const;

 private:
  explicit UsageLedger(storage::Database& db) : db_(db) {}
  storage::Database& db_;
  // Serialises flushes, so an older snapshot of a counter is never written after a newer one.
  std::mutex flush_mu_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, UsageCounters> counters_;  // guarded by mu_
  std::map<std::pair<std::string, std::string>, bool> dirty_;              // guarded by mu_
};

}  // namespace quilt::tenants
