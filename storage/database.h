// The one RocksDB database: a column family per kind of record, atomic batches, a schema version.
#pragma once

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

// Thread-safe: RocksDB serialises writers.
class Database {
 public:
  // Opens or creates DIR, every column family included. A database written by another schema
  // version is refused with a message naming both versions.
  static Result<std::unique_ptr<Database>> open(const std::filesystem::path& dir);
  ~Database();

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
