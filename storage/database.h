// The one RocksDB database: a column family per kind of record, atomic batches, a schema version.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quilt::storage {

enum class Family { kMeta, kTenants, kKeys, kAdapters, kAdapterBlobs, kUsage };

// A set of changes applied all or nothing by Database::write.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;

  void put(Family family, std::string_view key, std::string_view value);
  void remove(Family family, std::string_view key);
  // Removes every key of `family` in [begin, end).
  void remove_range(Family family, std::string_view begin, std::string_view end);
  size_t count() const;

 private:
  friend class Database;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DatabaseOptions {
  // While storage is faulted, how often recovery is tried (RocksDB's Resume(), else a reopen).
  std::chrono::milliseconds recovery_interval{1000};
};

// Thread-safe. Writes are serialised here (they are few: admin changes, usage flushes).
//
// Storage faults (no space left, an I/O error while writing) never end the process. The first
// failed write puts the database in read-only mode: reads go on from what is stored, and every
// write is refused with InsufficientStorage (HTTP 507) without reaching RocksDB again (a RocksDB
// writer that saw an error must not be written to). A background thread retries recovery every
// recovery_interval and makes the database writable again once a write can succeed. A database
// that cannot be opened for writing for lack of space opens read-only and recovers the same way.
class Database {
 public:
  // Opens or creates DIR, every column family included. A database written by another schema
  // version is refused with a message naming both versions; a directory another process holds
  // open is refused with a message saying so.
  static Result<std::unique_ptr<Database>> open(const std::filesystem::path& dir,
                                                const DatabaseOptions& options = {});
  ~Database();

  // OK when writes are accepted; otherwise InsufficientStorage saying why not.
  Status writable() const;

  Result<std::optional<std::string>> get(Family family, std::string_view key) const;
  // `sync`: the write is on disk (WAL fsync'd) before this returns. Admin writes use it.
  Status write(WriteBatch& batch, bool sync);
  Status put(Family family, std::string_view key, std::string_view value, bool sync);
  // Every (key, value) of `family` whose key starts with `prefix`, in key order.
  Result<std::vector<std::pair<std::string, std::string>>> scan(Family family,
                                                                std::string_view prefix) const;
  Status flush();

  static constexpr int kSchemaVersion = 1;

 private:
  struct Impl;
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace quilt::storage
