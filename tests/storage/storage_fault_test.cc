// Storage faults on a real full disk: a tmpfs of the test's own (mounting needs root; the tests
// skip without it). Writes are refused with InsufficientStorage, reads go on, nothing aborts,
// writes come back by themselves once space returns, and a full disk opens read-only.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "storage/database.h"
#include "tests/storage/temp_dir.h"

namespace quilt::storage {
namespace {

using namespace std::chrono_literals;

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mnt_ = tmp_.path() / "mnt";
    std::filesystem::create_directories(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=16m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    db_.reset();
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }

  std::unique_ptr<Database> open() {
    DatabaseOptions o;
    o.recovery_interval = 50ms;
    auto db = Database::open(mnt_ / "db", o);
    EXPECT_TRUE(db.ok()) << db.status().to_string();
    return db.ok() ? std::move(db).value() : nullptr;
  }

  // Fills every byte left on the tmpfs with a ballast file.
  void fill() {
    std::ofstream f(mnt_ / "ballast", std::ios::binary | std::ios::app);
    const std::string mb(1 << 20, 'x');
    while (f.write(mb.data(), static_cast<std::streamsize>(mb.size())) && f.flush()) {
    }
    f.clear();
    const std::string kb(1 << 10, 'x');
    while (f.write(kb.data(), static_cast<std::streamsize>(kb.size())) && f.flush()) {
    }
  }
  void free_space() { std::filesystem::remove(mnt_ / "ballast"); }

  bool eventually_writable(Database& db) {
    for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
      if (db.writable().ok()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  quilt::testing::TempDir tmp_;
  std::filesystem::path mnt_;
  bool mounted_ = false;
  std::unique_ptr<Database> db_;
};

TEST_F(FullDiskTest, WritesAreRefusedReadsGoOnAndWritesRecoverWhenSpaceReturns) {
  db_ = open();
  ASSERT_TRUE(db_);
  ASSERT_TRUE(db_->put(Family::kTenants, "t1", "acme", /*sync=*/true).ok());
  fill();

  // Writes of adapter-sized batches until the disk refuses one: never an abort.
  const std::string blob(256 << 10, 'w');
  Status failed;
  for (int i = 0; i < 200 && failed.ok(); ++i) {
    failed = db_->put(Family::kAdapterBlobs, "blob" + std::to_string(i), blob, /*sync=*/true);
  }
  ASSERT_FALSE(failed.ok()) << "the 16 MB disk never filled";
  EXPECT_TRUE(failed.IsInsufficientStorage()) << failed.to_string();
  EXPECT_EQ(http_status(failed.code()), 507);
  EXPECT_NE(failed.message().find("no space"), std::string::npos) << failed.message();

  // Read-only now: more writes are refused without touching RocksDB; reads answer.
  Status again = db_->put(Family::kTenants, "t2", "other", /*sync=*/true);
  EXPECT_TRUE(again.IsInsufficientStorage()) << again.to_string();
  EXPECT_TRUE(db_->writable().IsInsufficientStorage());
  EXPECT_TRUE(db_->flush().IsInsufficientStorage());
  auto v = db_->get(Family::kTenants, "t1");
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->value_or(""), "acme");
  auto all = db_->scan(Family::kTenants, "");
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  EXPECT_EQ(all->size(), 1u);

  free_space();
  ASSERT_TRUE(eventually_writable(*db_)) << db_->writable().to_string();
  ASSERT_TRUE(db_->put(Family::kTenants, "t2", "other", /*sync=*/true).ok());
  EXPECT_EQ(db_->get(Family::kTenants, "t1")->value_or(""), "acme");
  EXPECT_EQ(db_->get(Family::kTenants, "t2")->value_or(""), "other");
  db_.reset();

  // Nothing acknowledged was lost on the way.
  db_ = open();
  ASSERT_TRUE(db_);
  EXPECT_EQ(db_->get(Family::kTenants, "t1")->value_or(""), "acme");
  EXPECT_EQ(db_->get(Family::kTenants, "t2")->value_or(""), "other");
}

TEST_F(FullDiskTest, AFullDiskOpensReadOnlyAndRecovers) {
  db_ = open();
  ASSERT_TRUE(db_);
  ASSERT_TRUE(db_->put(Family::kTenants, "t1", "acme", /*sync=*/true).ok());
  db_.reset();
  fill();

  db_ = open();
  ASSERT_TRUE(db_) << "a full disk must open read-only, not fail";
  EXPECT_TRUE(db_->writable().IsInsufficientStorage()) << db_->writable().to_string();
  EXPECT_EQ(db_->get(Family::kTenants, "t1")->value_or(""), "acme");
  EXPECT_TRUE(db_->put(Family::kTenants, "t2", "other", true).IsInsufficientStorage());

  free_space();
  ASSERT_TRUE(eventually_writable(*db_)) << db_->writable().to_string();
  ASSERT_TRUE(db_->put(Family::kTenants, "t2", "other", /*sync=*/true).ok());
  EXPECT_EQ(db_->get(Family::kTenants, "t1")->value_or(""), "acme");
}

}  // namespace
}  // namespace quilt::storage
