// Tests of storage::Database: families, scans, batches, reopen, the schema check and a crash test.
#include "storage/database.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/storage/temp_dir.h"

namespace quilt::storage {
namespace {

using quilt::testing::TempDir;
using KV = std::vector<std::pair<std::string, std::string>>;

constexpr Family kAllFamilies[] = {Family::kMeta,     Family::kTenants,      Family::kKeys,
                                   Family::kAdapters, Family::kAdapterBlobs, Family::kUsage};

std::unique_ptr<Database> open_or_die(const std::filesystem::path& dir) {
  auto db = Database::open(dir);
  EXPECT_TRUE(db.ok()) << db.status().message();
  return db.ok() ? std::move(db).value() : nullptr;
}

std::optional<std::string> get_or_die(const Database& db, Family f, std::string_view key) {
  auto v = db.get(f, key);
  EXPECT_TRUE(v.ok()) << v.status().message();
  return v.ok() ? *v : std::nullopt;
}

KV scan_or_die(const Database& db, Family f, std::string_view prefix) {
  auto v = db.scan(f, prefix);
  EXPECT_TRUE(v.ok()) << v.status().message();
  return v.ok() ? *v : KV{};
}

TEST(DatabaseTest, MissingKeyIsNulloptNotAnError) {
  TempDir dir;
  auto db = open_or_die(dir.path() / "db");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(get_or_die(*db, Family::kTenants, "nope"), std::nullopt);
}

TEST(DatabaseTest, FamiliesAreSeparate) {
  TempDir dir;
  auto db = open_or_die(dir.path() / "db");
  ASSERT_NE(db, nullptr);
  for (Family f : kAllFamilies) {
    const std::string value = "v" + std::to_string(static_cast<int>(f));
    ASSERT_TRUE(db->put(f, "same-key", value, /*sync=*/false).ok());
  }
  for (Family f : kAllFamilies) {
    EXPECT_EQ(get_or_die(*db, f, "same-key"), "v" + std::to_string(static_cast<int>(f)));
    EXPECT_EQ(scan_or_die(*db, f, "same").size(), 1u);
  }
  // kMeta holds the schema version too; nothing else leaked into any family.
  EXPECT_EQ(scan_or_die(*db, Family::kMeta, "").size(), 2u);
  EXPECT_EQ(scan_or_die(*db, Family::kUsage, "").size(), 1u);
}

TEST(DatabaseTest, ScanReturnsExactlyThePrefixInKeyOrder) {
  TempDir dir;
  auto db = open_or_die(dir.path() / "db");
  ASSERT_NE(db, nullptr);
  const std::string with_nul("ab\0z", 4);
  for (std::string k : {"b", "abc", "a", "ab", "aa", "abd"}) {
    ASSERT_TRUE(db->put(Family::kAdapters, k, "v:" + k, false).ok());
  }
  ASSERT_TRUE(db->put(Family::kAdapters, with_nul, "nul", false).ok());
  const KV got = scan_or_die(*db, Family::kAdapters, "ab");
  const KV want = {{"ab", "v:ab"}, {with_nul, "nul"}, {"abc", "v:abc"}, {"abd", "v:abd"}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(scan_or_die(*db, Family::kAdapters, "").size(), 7u);
  EXPECT_TRUE(scan_or_die(*db, Family::kAdapters, "c").empty());
}

TEST(DatabaseTest, BatchAppliesEverythingOnlyOnWrite) {
  TempDir dir;
  auto db = open_or_die(dir.path() / "db");
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->put(Family::kKeys, "old", "x", false).ok());

  WriteBatch batch;
  for (int i = 0; i < 10; ++i) batch.put(Family::kTenants, "t" + std::to_string(i), "v");
  batch.put(Family::kKeys, "k", "v");
  batch.remove(Family::kKeys, "old");
  batch.put(Family::kUsage, "gone", "v");
  batch.remove(Family::kUsage, "gone");  // later operations in a batch win
  EXPECT_EQ(batch.count(), 14u);

  EXPECT_TRUE(scan_or_die(*db, Family::kTenants, "").empty()) << "visible before write";
  ASSERT_TRUE(db->write(batch, /*sync=*/true).ok());
  EXPECT_EQ(scan_or_die(*db, Family::kTenants, "t").size(), 10u);
  EXPECT_EQ(get_or_die(*db, Family::kKeys, "k"), "v");
  EXPECT_EQ(get_or_die(*db, Family::kKeys, "old"), std::nullopt);
  EXPECT_EQ(get_or_die(*db, Family::kUsage, "gone"), std::nullopt);

  WriteBatch moved = std::move(batch);
  EXPECT_EQ(moved.count(), 14u);
  EXPECT_EQ(batch.count(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
}

TEST(DatabaseTest, RemoveRangeRemovesHalfOpenRangeOfOneFamily) {
  TempDir dir;
  auto db = open_or_die(dir.path() / "db");
  ASSERT_NE(db, nullptr);
  WriteBatch fill;
  for (char c = 'a'; c <= 'j'; ++c) {
    fill.put(Family::kAdapterBlobs, std::string("blob/") + c, "x");
    fill.put(Family::kAdapters, std::string("blob/") + c, "y");
  }
  ASSERT_TRUE(db->write(fill, false).ok());

  WriteBatch cut;
  cut.remove_range(Family::kAdapterBlobs, "blob/c", "blob/f");
  ASSERT_TRUE(db->write(cut, true).ok());
  std::string left;
  for (const auto& [k, v] : scan_or_die(*db, Family::kAdapterBlobs, "blob/")) left += k.back();
  EXPECT_EQ(left, "abfghij");
  EXPECT_EQ(scan_or_die(*db, Family::kAdapters, "blob/").size(), 10u);
}

TEST(DatabaseTest, ReopenKeepsDataIncludingLargeValues) {
  TempDir dir;
  std::string big(3 << 20, '\0');
  std::mt19937 rng(7);
  for (auto& ch : big) ch = static_cast<char>(rng());
  {
    auto db = open_or_die(dir.path() / "db");
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->put(Family::kTenants, "synced", "1", /*sync=*/true).ok());
    ASSERT_TRUE(db->put(Family::kUsage, "unsynced", "2", /*sync=*/false).ok());
    ASSERT_TRUE(db->put(Family::kAdapterBlobs, "big", big, true).ok());
  }
  {
    auto db = open_or_die(dir.path() / "db");
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(get_or_die(*db, Family::kTenants, "synced"), "1");
    EXPECT_EQ(get_or_die(*db, Family::kUsage, "unsynced"), "2");
    EXPECT_EQ(get_or_die(*db, Family::kAdapterBlobs, "big"), big);
    EXPECT_TRUE(db->flush().ok());
  }
  auto db = open_or_die(dir.path() / "db");  // after flush: read from SST and blob files
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(get_or_die(*db, Family::kAdapterBlobs, "big"), big);
  EXPECT_EQ(get_or_die(*db, Family::kMeta, "schema_version"),
            std::to_string(Database::kSchemaVersion));
}

TEST(DatabaseTest, OtherSchemaVersionIsRefusedNamingBoth) {
  TempDir dir;
  {
    auto db = open_or_die(dir.path() / "db");
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->put(Family::kMeta, "schema_version", "999", true).ok());
  }
  auto db = Database::open(dir.path() / "db");
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(db.status().IsIOError());
  const std::string& msg = db.status().message();
  EXPECT_NE(msg.find("999"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(Database::kSchemaVersion)), std::string::npos) << msg;
}

TEST(DatabaseTest, OpenFailureIsAnIOErrorNotACrash) {
  TempDir dir;
  auto first = open_or_die(dir.path() / "db");
  ASSERT_NE(first, nullptr);
  auto second = Database::open(dir.path() / "db");  // RocksDB's LOCK file is held by `first`
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsIOError()) << second.status().to_string();
}

TEST(DatabaseTest, ConcurrentWritersAndReaders) {
  TempDir dir;
  auto db = open_or_die(dir.path() / "db");
  ASSERT_NE(db, nullptr);
  constexpr int kThreads = 4, kBatches = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatches; ++i) {
        WriteBatch b;
        b.put(Family::kUsage, std::to_string(t) + "/" + std::to_string(i), "v");
        b.put(Family::kTenants, std::to_string(t) + "/" + std::to_string(i), "v");
        if (!db->write(b, false).ok()) ++failures;
        if (!db->get(Family::kUsage, std::to_string(t) + "/0").ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(scan_or_die(*db, Family::kUsage, "").size(), size_t{kThreads * kBatches});
  EXPECT_EQ(scan_or_die(*db, Family::kTenants, "").size(), size_t{kThreads * kBatches});
}

// ---- Crash test: a child process writes synced batches and is SIGKILLed at a random moment. ----
//
// The child is this same binary re-executed with a filter for the helper test below, so it starts
// as a clean process: forking a process that has RocksDB's background threads (left by the tests
// above) and using RocksDB in the child could deadlock on a lock one of those threads held.

constexpr int kKeysPerBatch = 16;
constexpr const char* kChildDirEnv = "QUILT_CRASH_CHILD_DIR";
constexpr const char* kChildFdEnv = "QUILT_CRASH_CHILD_FD";

std::string batch_prefix(int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "b%010lld/", static_cast<long long>(b));
  return buf;
}
std::string value_for(int64_t b, int k) {
  return std::string(100 + (b * 31 + k) % 900, static_cast<char>('a' + (b + k) % 26));
}

// Writes batch after batch until killed; after each synced write, acknowledges its number.
TEST(DatabaseCrashChild, WritesUntilKilled) {
  const char* dir = std::getenv(kChildDirEnv);
  const char* fd_text = std::getenv(kChildFdEnv);
  if (dir == nullptr || fd_text == nullptr) GTEST_SKIP() << "helper process of the crash test";
  const int fd = std::atoi(fd_text);
  auto db = Database::open(dir);
  if (!db.ok()) _exit(2);
  // Continue after the last committed batch of an earlier round.
  auto markers = (*db)->scan(Family::kUsage, "b");
  if (!markers.ok()) _exit(3);
  int64_t b = markers->empty() ? 0 : std::stoll(markers->back().first.substr(1)) + 1;
  for (;; ++b) {
    WriteBatch batch;
    // Keys in one family and the commit marker in another: atomicity must span families.
    for (int k = 0; k < kKeysPerBatch; ++k)
      batch.put(Family::kTenants, batch_prefix(b) + std::to_string(k), value_for(b, k));
    batch.put(Family::kUsage, batch_prefix(b) + "commit", "1");
    if (!(*db)->write(batch, /*sync=*/true).ok()) _exit(4);
    const std::string ack = std::to_string(b) + "\n";
    if (write(fd, ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) _exit(5);
  }
}

// Kills and reaps the child when a failed assertion leaves the test early.
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

TEST(DatabaseCrashTest, EveryAcknowledgedBatchSurvivesAndNoneIsPartial) {
  TempDir dir;
  const std::string db_dir = (dir.path() / "db").string();
  std::random_device rd;
  const unsigned seed = rd();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  int64_t acknowledged = -1;  // the highest batch number any child acknowledged

  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      if (!freopen("/dev/null", "w", stdout)) _exit(126);  // keep the child's test log quiet
      setenv(kChildDirEnv, db_dir.c_str(), 1);
      setenv(kChildFdEnv, std::to_string(fds[1]).c_str(), 1);
      char filter[] = "--gtest_filter=DatabaseCrashChild.WritesUntilKilled";
      char name[] = "storage_tests";
      char* argv[] = {name, filter, nullptr};
      execv("/proc/self/exe", argv);
      _exit(127);
    }
    ChildGuard guard{pid};
    close(fds[1]);
    // Wait for the first acknowledgement (the child is running), then kill at a random moment.
    std::string acks;
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << "the child wrote nothing";
    acks.append(buf, n);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 400)(rng)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    guard.pid = -1;
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "the child exited by itself, status " << wstatus;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) acks.append(buf, n);  // acks before the kill
    close(fds[0]);
    size_t end = acks.rfind('\n');
    ASSERT_NE(end, std::string::npos);
    size_t start = acks.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    const int64_t last = std::stoll(acks.substr(start, end - start));
    ASSERT_GT(last, acknowledged);
    acknowledged = last;

    auto db = open_or_die(db_dir);
    ASSERT_NE(db, nullptr);
    std::map<int64_t, int> keys_per_batch;
    for (const auto& [k, v] : scan_or_die(*db, Family::kTenants, "b")) {
      const int64_t b = std::stoll(k.substr(1, 10));
      const int key = std::stoi(k.substr(12));
      ASSERT_EQ(v, value_for(b, key)) << k;
      ++keys_per_batch[b];
    }
    std::set<int64_t> committed;
    for (const auto& [k, v] : scan_or_die(*db, Family::kUsage, "b"))
      committed.insert(std::stoll(k.substr(1, 10)));
    for (const auto& [b, count] : keys_per_batch) {
      EXPECT_EQ(count, kKeysPerBatch) << "batch " << b << " is partial";
      EXPECT_TRUE(committed.count(b)) << "batch " << b << " has keys but no commit marker";
    }
    for (int64_t b : committed) EXPECT_TRUE(keys_per_batch.count(b)) << "marker alone: " << b;
    // Every acknowledged batch is there; at most one more (written, killed before its ack).
    for (int64_t b = 0; b <= acknowledged; ++b) ASSERT_TRUE(committed.count(b)) << "lost " << b;
    EXPECT_LE(*committed.rbegin(), acknowledged + 1);
    acknowledged = *committed.rbegin();
  }
  RecordProperty("batches_committed", static_cast<int>(acknowledged + 1));
}

}  // namespace
}  // namespace quilt::storage
