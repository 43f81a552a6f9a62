// The RocksDB-backed Database: column families, batches, scans and the schema-version check.
#include "storage/database.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <system_error>

namespace quilt::storage {
namespace {

constexpr size_t kFamilyCount = 6;
// Index = Family's value. "default" is kMeta because RocksDB always has that family anyway.
constexpr std::array<const char*, kFamilyCount> kFamilyNames = {
    "default", "tenants", "keys", "adapters", "adapter_blobs", "usage"};
constexpr std::string_view kSchemaKey = "schema_version";

// One cache for every family so the memory bound is global, not per family.
constexpr size_t kBlockCacheBytes = 64u << 20;
// Adapter weights are megabytes each: keep them in blob files so compaction does not rewrite them.
constexpr uint64_t kMinBlobBytes = 64u << 10;

size_t index_of(Family f) { return static_cast<size_t>(f); }
const char* name_of(Family f) { return kFamilyNames[index_of(f)]; }

rocksdb::Slice slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

Status io_error(std::string_view operation, const rocksdb::Status& s) {
  return Status::IOError("rocksdb " + std::string(operation) + ": " + s.ToString());
}
Status io_error(std::string_view operation, Family f, const rocksdb::Status& s) {
  return io_error(std::string(operation) + " (" + name_of(f) + ")", s);
}

rocksdb::ColumnFamilyOptions family_options(const std::string& name,
                                            const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions options;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (name == kFamilyNames[index_of(Family::kAdapterBlobs)]) {
    options.enable_blob_files = true;
    options.min_blob_size = kMinBlobBytes;
  }
  return options;
}

}  // namespace

// Operations are recorded, not put into a rocksdb::WriteBatch at once: a rocksdb batch needs the
// column family handles, which belong to one open Database, and a WriteBatch is built before
// (and independently of) the Database it is written to.
struct WriteBatch::Impl {
  enum class Kind { kPut, kDelete, kDeleteRange };
  struct Op {
    Kind kind;
    Family family;
    std::string a;  // key, or range begin
    std::string b;  // value, or range end
  };
  std::vector<Op> ops;
};

WriteBatch::WriteBatch() : impl_(std::make_unique<Impl>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

void WriteBatch::put(Family family, std::string_view key, std::string_view value) {
  impl_->ops.push_back({Impl::Kind::kPut, family, std::string(key), std::string(value)});
}
void WriteBatch::remove(Family family, std::string_view key) {
  impl_->ops.push_back({Impl::Kind::kDelete, family, std::string(key), {}});
}
void WriteBatch::remove_range(Family family, std::string_view begin, std::string_view end) {
  impl_->ops.push_back({Impl::Kind::kDeleteRange, family, std::string(begin), std::string(end)});
}
size_t WriteBatch::count() const { return impl_ ? impl_->ops.size() : 0; }

struct Database::Impl {
  // Constant after open; rocksdb::DB and its handles are thread-safe.
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // every opened family; owned, freed in ~Impl
  std::array<rocksdb::ColumnFamilyHandle*, kFamilyCount> family{};  // views into `handles`

  ~Impl() {
    if (!db) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();  // the WAL replays anything not flushed
  }

  rocksdb::ColumnFamilyHandle* cf(Family f) const { return family[index_of(f)]; }
};

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status::IOError("cannot create database directory " + dir.string() + ": " +
                           ec.message());

  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.max_background_jobs = 2;
  options.keep_log_file_num = 4;  // RocksDB's own info logs, not the WAL
  auto cache = rocksdb::NewLRUCache(kBlockCacheBytes);

  // Open every family on disk, not just ours: a database from a newer schema may have more, and
  // RocksDB refuses to open without them; the schema check below then gives the clear error.
  std::vector<std::string> names(kFamilyNames.begin(), kFamilyNames.end());
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(options, dir.string(), &existing).ok()) {
    for (const auto& n : existing)
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, family_options(n, cache));

  auto impl = std::make_unique<Impl>();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir.string(), descriptors, &impl->handles, &raw);
  if (!s.ok()) return io_error("open " + dir.string(), s);
  impl->db.reset(raw);
  for (size_t i = 0; i < kFamilyCount; ++i) impl->family[i] = impl->handles[i];

  std::unique_ptr<Database> db(new Database(std::move(impl)));
  QUILT_ASSIGN_OR_RETURN(auto stored, db->get(Family::kMeta, kSchemaKey));
  const std::string ours = std::to_string(kSchemaVersion);
  if (!stored) {
    WriteBatch batch;
    batch.put(Family::kMeta, kSchemaKey, ours);
    QUILT_RETURN_IF_ERROR(db->write(batch, /*sync=*/true));
  } else if (*stored != ours) {
    return Status::IOError("database " + dir.string() + " has schema version '" + *stored +
                           "'; this build reads schema version " + ours);
  }
  return db;
}

Result<std::optional<std::string>> Database::get(Family family, std::string_view key) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(family), slice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return io_error("get", family, s);
  return std::optional<std::string>(std::move(value));
}

Status Database::write(WriteBatch& batch, bool sync) {
  if (!batch.impl_) return Status::OK();  // a moved-from batch holds nothing
  rocksdb::WriteBatch rb;
  for (const auto& op : batch.impl_->ops) {
    rocksdb::ColumnFamilyHandle* cf = impl_->cf(op.family);
    rocksdb::Status s;
    switch (op.kind) {
      case WriteBatch::Impl::Kind::kPut:
        s = rb.Put(cf, op.a, op.b);
        break;
      case WriteBatch::Impl::Kind::kDelete:
        s = rb.Delete(cf, op.a);
        break;
      case WriteBatch::Impl::Kind::kDeleteRange:
        s = rb.DeleteRange(cf, op.a, op.b);
        break;
    }
    if (!s.ok()) return io_error("batch", op.family, s);
  }
  rocksdb::WriteOptions options;
  options.sync = sync;
  rocksdb::Status s = impl_->db->Write(options, &rb);
  if (!s.ok()) return io_error("write", s);
  return Status::OK();
}

Status Database::put(Family family, std::string_view key, std::string_view value, bool sync) {
  WriteBatch batch;
  batch.put(family, key, value);
  return write(batch, sync);
}

Result<std::vector<std::pair<std::string, std::string>>> Database::scan(
    Family family, std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(family)));
  for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  if (!it->status().ok()) return io_error("scan", family, it->status());
  return out;
}

Status Database::flush() {
  // The WAL first (unsynced writes reach the disk), then the memtables, so a restart replays less.
  rocksdb::Status s = impl_->db->FlushWAL(/*sync=*/true);
  if (!s.ok()) return io_error("flush wal", s);
  std::vector<rocksdb::ColumnFamilyHandle*> ours(impl_->family.begin(), impl_->family.end());
  s = impl_->db->Flush(rocksdb::FlushOptions(), ours);
  if (!s.ok()) return io_error("flush", s);
  return Status::OK();
}

}  // namespace quilt::storage
