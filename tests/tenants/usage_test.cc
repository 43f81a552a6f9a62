// Tests of UsageLedger: sums, flush, reopen and the flush at destruction.
#include "tenants/usage.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/storage/temp_dir.h"

namespace quilt::tenants {
namespace {

using quilt::testing::TempDir;
using Snapshot = std::map<std::pair<std::string, std::string>, UsageCounters>;

std::unique_ptr<storage::Database> open_db(const TempDir& dir) {
  auto db = storage::Database::open(dir.path() / "db");
  EXPECT_TRUE(db.ok()) << db.status().message();
  return db.ok() ? std::move(db).value() : nullptr;
}

std::unique_ptr<UsageLedger> open_ledger(storage::Database& db) {
  auto ledger = UsageLedger::open(db);
  EXPECT_TRUE(ledger.ok()) << ledger.status().message();
  return ledger.ok() ? std::move(ledger).value() : nullptr;
}

void expect_counters(const Snapshot& s, const std::string& tenant, const std::string& adapter,
                     int64_t requests, int64_t prompt, int64_t completion) {
  auto it = s.find({tenant, adapter});
  ASSERT_NE(it, s.end()) << tenant << "/" << adapter;
  EXPECT_EQ(it->second.requests, requests) << tenant << "/" << adapter;
  EXPECT_EQ(it->second.prompt_tokens, prompt) << tenant << "/" << adapter;
  EXPECT_EQ(it->second.completion_tokens, completion) << tenant << "/" << adapter;
}

TEST(UsageLedgerTest, SnapshotSumsPerTenantAndAdapter) {
  TempDir dir;
  auto db = open_db(dir);
  ASSERT_NE(db, nullptr);
  auto ledger = open_ledger(*db);
  ASSERT_NE(ledger, nullptr);
  EXPECT_TRUE(ledger->snapshot().empty());
  ledger->record("t_a", "sql", 10, 5);
  ledger->record("t_a", "sql", 3, 2);
  ledger->record("t_a", "", 7, 1);
  ledger->record("t_b", "sql", 1, 1);
  const Snapshot s = ledger->snapshot();
  EXPECT_EQ(s.size(), 3u);
  expect_counters(s, "t_a", "sql", 2, 13, 7);
  expect_counters(s, "t_a", "", 1, 7, 1);
  expect_counters(s, "t_b", "sql", 1, 1, 1);
}

TEST(UsageLedgerTest, FlushAndReopenKeepCounts) {
  TempDir dir;
  {
    auto db = open_db(dir);
    ASSERT_NE(db, nullptr);
    auto ledger = open_ledger(*db);
    ASSERT_NE(ledger, nullptr);
    EXPECT_TRUE(ledger->flush().ok()) << "flushing nothing is fine";
    ledger->record("t_a", "sql", 10, 5);
    ledger->record("t_a", "", 4, 4);
    ASSERT_TRUE(ledger->flush().ok());
    ledger->record("t_a", "sql", 1, 1);  // after a flush: only this counter is dirty
    ASSERT_TRUE(ledger->flush().ok());
  }
  {
    auto db = open_db(dir);
    ASSERT_NE(db, nullptr);
    auto ledger = open_ledger(*db);
    ASSERT_NE(ledger, nullptr);
    const Snapshot s = ledger->snapshot();
    EXPECT_EQ(s.size(), 2u);
    expect_counters(s, "t_a", "sql", 2, 11, 6);
    expect_counters(s, "t_a", "", 1, 4, 4);
    ledger->record("t_a", "sql", 100, 0);  // continues from the loaded counts
    // No flush(): the destructor writes it.
  }
  auto db = open_db(dir);
  ASSERT_NE(db, nullptr);
  auto ledger = open_ledger(*db);
  ASSERT_NE(ledger, nullptr);
  expect_counters(ledger->snapshot(), "t_a", "sql", 3, 111, 6);
}

TEST(UsageLedgerTest, ConcurrentRecordsAndFlushesLoseNothing) {
  TempDir dir;
  auto db = open_db(dir);
  ASSERT_NE(db, nullptr);
  {
    auto ledger = open_ledger(*db);
    ASSERT_NE(ledger, nullptr);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        for (int j = 0; j < 500; ++j) {
          ledger->record("t_a", "x", 2, 3);
          if (j % 50 == 0) {
            EXPECT_TRUE(ledger->flush().ok());
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_TRUE(ledger->flush().ok());
  }
  auto ledger = open_ledger(*db);
  ASSERT_NE(ledger, nullptr);
  expect_counters(ledger->snapshot(), "t_a", "x", 2000, 4000, 6000);
}

}  // namespace
}  // namespace quilt::tenants
