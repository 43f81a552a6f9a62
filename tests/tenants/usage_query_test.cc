// Tests of UsageLedger's days: date parsing, grouping, filters, persistence, pre-day records.
#include <gtest/gtest.h>

#include "tenants/usage.h"
#include "tests/storage/temp_dir.h"

namespace quilt::tenants {
namespace {

using quilt::testing::TempDir;

constexpr int64_t kDec1 = 1'796'083'200;  // 2026-12-01T00:00:00Z

TEST(UsageDaysTest, ParseAndFormatDays) {
  EXPECT_EQ(parse_day("1970-01-01"), 0);
  EXPECT_EQ(parse_day("2026-12-01"), kDec1 / kSecondsPerDay);
  EXPECT_EQ(day_string(kDec1 / kSecondsPerDay), "2026-12-01");
  EXPECT_EQ(parse_day("2024-02-29"), parse_day("2024-02-28").value() + 1);
  EXPECT_EQ(day_string(parse_day("2000-03-01").value()), "2000-03-01");
  for (const char* bad : {"2023-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "1969-12-31",
                          "2026-1-01", "2026/12/01", "20261201", "", "2026-12-01T00:00:00Z",
                          "abcd-ef-gh"}) {
    EXPECT_EQ(parse_day(bad), std::nullopt) << bad;
  }
}

class UsageQueryTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    ledger_.reset();
    db_.reset();
    auto db = storage::Database::open(dir_.path() / "db");
    ASSERT_TRUE(db.ok()) << db.status().message();
    db_ = std::move(db).value();
    auto ledger = UsageLedger::open(*db_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().message();
    ledger_ = std::move(ledger).value();
  }
  // Three days of usage for two tenants.
  void record_three_days() {
    ledger_->record("t_a", "sql", 10, 1, kDec1 + 10);
    ledger_->record("t_a", "sql", 20, 2, kDec1 + 86399);  // still Dec 1
    ledger_->record("t_a", "sql", 30, 3, kDec1 + 86400);  // Dec 2
    ledger_->record("t_a", "", 5, 5, kDec1 + 86400 * 2);  // Dec 3, base model
    ledger_->record("t_b", "sql", 7, 7, kDec1 + 86400 * 2);
  }
  TempDir dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<UsageLedger> ledger_;
};

void expect_row(const UsageRow& r, const std::string& tenant, const std::string& adapter,
                int64_t day, int64_t requests, int64_t prompt, int64_t completion) {
  EXPECT_EQ(r.tenant, tenant);
  EXPECT_EQ(r.adapter, adapter);
  EXPECT_EQ(r.day, day) << (day == kNoDay ? "no day" : day_string(day));
  EXPECT_EQ(r.counters.requests, requests);
  EXPECT_EQ(r.counters.prompt_tokens, prompt);
  EXPECT_EQ(r.counters.completion_tokens, completion);
}

TEST_F(UsageQueryTest, GroupsByDayAndFilters) {
  record_three_days();
  const int64_t d1 = kDec1 / kSecondsPerDay;
  UsageQuery by_day;
  by_day.by_day = true;
  auto rows = ledger_->query(by_day);
  ASSERT_EQ(rows.size(), 4u);
  expect_row(rows[0], "t_a", "sql", d1, 2, 30, 3);
  expect_row(rows[1], "t_a", "sql", d1 + 1, 1, 30, 3);
  expect_row(rows[2], "t_a", "", d1 + 2, 1, 5, 5);
  expect_row(rows[3], "t_b", "sql", d1 + 2, 1, 7, 7);

  UsageQuery totals;  // one row per (tenant, adapter)
  rows = ledger_->query(totals);
  ASSERT_EQ(rows.size(), 3u);
  expect_row(rows[0], "t_a", "", kNoDay, 1, 5, 5);
  expect_row(rows[1], "t_a", "sql", kNoDay, 3, 60, 6);
  expect_row(rows[2], "t_b", "sql", kNoDay, 1, 7, 7);

  UsageQuery range;  // inclusive days
  range.from_day = d1 + 1;
  range.to_day = d1 + 2;
  range.tenant = "t_a";
  rows = ledger_->query(range);
  ASSERT_EQ(rows.size(), 2u);
  expect_row(rows[0], "t_a", "", kNoDay, 1, 5, 5);
  expect_row(rows[1], "t_a", "sql", kNoDay, 1, 30, 3);

  UsageQuery base;
  base.adapter = "";
  rows = ledger_->query(base);
  ASSERT_EQ(rows.size(), 1u);
  expect_row(rows[0], "t_a", "", kNoDay, 1, 5, 5);

  UsageQuery none;
  none.tenant = "t_zzz";
  EXPECT_TRUE(ledger_->query(none).empty());
  // The snapshot still sums over days.
  EXPECT_EQ((ledger_->snapshot()[{"t_a", "sql"}].prompt_tokens), 60);
}

TEST_F(UsageQueryTest, DaysSurviveFlushAndReopen) {
  record_three_days();
  ASSERT_TRUE(ledger_->flush().ok());
  reopen();
  UsageQuery by_day;
  by_day.by_day = true;
  auto rows = ledger_->query(by_day);
  ASSERT_EQ(rows.size(), 4u);
  expect_row(rows[1], "t_a", "sql", kDec1 / kSecondsPerDay + 1, 1, 30, 3);
  // Counting goes on from the stored value.
  ledger_->record("t_a", "sql", 1, 1, kDec1 + 86400 + 5);
  ASSERT_TRUE(ledger_->flush().ok());
  reopen();
  rows = ledger_->query(by_day);
  expect_row(rows[1], "t_a", "sql", kDec1 / kSecondsPerDay + 1, 2, 31, 4);
}

TEST_F(UsageQueryTest, RecordsFromBeforeDaysLoadWithoutADay) {
  // The key layout releases before per-day usage wrote: tenant US adapter.
  ASSERT_TRUE(db_->put(storage::Family::kUsage, std::string("t_a\x1fsql"),
                       R"({"requests":4,"prompt_tokens":40,"completion_tokens":8})", true)
                  .ok());
  reopen();
  ledger_->record("t_a", "sql", 1, 1, kDec1);
  UsageQuery by_day;
  by_day.by_day = true;
  auto rows = ledger_->query(by_day);
  ASSERT_EQ(rows.size(), 2u);
  expect_row(rows[0], "t_a", "sql", kNoDay, 4, 40, 8);  // kNoDay sorts first
  expect_row(rows[1], "t_a", "sql", kDec1 / kSecondsPerDay, 1, 1, 1);
  rows = ledger_->query(UsageQuery{});
  ASSERT_EQ(rows.size(), 1u);
  expect_row(rows[0], "t_a", "sql", kNoDay, 5, 41, 9);
  UsageQuery from;  // a date range cannot place undated usage, so it leaves it out
  from.from_day = 0;
  rows = ledger_->query(from);
  ASSERT_EQ(rows.size(), 1u);
  expect_row(rows[0], "t_a", "sql", kNoDay, 1, 1, 1);
  // The old record is left as it is and still loads after a flush.
  ASSERT_TRUE(ledger_->flush().ok());
  reopen();
  EXPECT_EQ((ledger_->snapshot()[{"t_a", "sql"}].requests), 5);
}

}  // namespace
}  // namespace quilt::tenants
