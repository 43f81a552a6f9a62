// The RocksDB-backed Database: column families, batches, scans and the schema-version check.
#include "storage/database.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <thread>

#include "common/log.h"

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

namespace {

// One open rocksdb::DB (read-write, or read-only while the disk is full) and its family handles.
struct Instance {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // every opened family; owned
  std::array<rocksdb::ColumnFamilyHandle*, kFamilyCount> family{};  // views into `handles`
  bool read_only = false;

  ~Instance() {
    if (!db) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();  // the WAL replays anything not flushed
  }
  rocksdb::ColumnFamilyHandle* cf(Family f) const { return family[index_of(f)]; }
};

// RocksDB's own log goes to stderr, warnings and worse only. Its default, a LOG file in the
// database directory, fails on a full disk, and RocksDB 7.8 asserts on the next line it logs
// after a failed one (WritableFileWriter::AssertFalseAndGetStatusForPrevError): the full disk
// would abort the process from inside the error handler.
class StderrLogger final : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    log::warn("rocksdb", {{"line", line}});
  }
};

// A failure of the disk under a write (rather than of the request): the database turns
// read-only until it recovers.
bool is_storage_fault(const rocksdb::Status& s) { return s.IsIOError() || s.IsNoSpace(); }

std::string describe_fault(const rocksdb::Status& s) {
  return s.IsNoSpace() ? "no space left on the device (" + s.ToString() + ")" : s.ToString();
}

// RocksDB reports a held LOCK file as an I/O error; say what it means.
bool is_lock_held(const rocksdb::Status& s) {
  const std::string m = s.ToString();
  return s.IsIOError() && !s.IsNoSpace() && m.find("lock") != std::string::npos;
}

Result<std::unique_ptr<Instance>> open_instance(const std::filesystem::path& dir,
                                                const std::shared_ptr<rocksdb::Cache>& cache,
                                                bool read_only, rocksdb::Status* raw_status) {
  static const auto logger = std::make_shared<StderrLogger>();
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.max_background_jobs = 2;
  options.info_log = logger;

  // Open every family on disk, not just ours: a database from a newer schema may have more, and
  // RocksDB refuses to open without them; the schema check then gives the clear error.
  std::vector<std::string> names(kFamilyNames.begin(), kFamilyNames.end());
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(options, dir.string(), &existing).ok()) {
    for (const auto& n : existing)
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  } else if (read_only) {
    names = {kFamilyNames.begin(), kFamilyNames.end()};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, family_options(n, cache));

  auto inst = std::make_unique<Instance>();
  inst->read_only = read_only;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      read_only ? rocksdb::DB::OpenForReadOnly(options, dir.string(), descriptors, &inst->handles, &raw)
                : rocksdb::DB::Open(options, dir.string(), descriptors, &inst->handles, &raw);
  *raw_status = s;
  if (!s.ok()) {
    if (is_lock_held(s)) {
      return Status::IOError("database " + dir.string() +
                             " is in use by another process (another quilt server on the same "
                             "--data-dir?): " + s.ToString());
    }
    return io_error(std::string(read_only ? "open (read-only) " : "open ") + dir.string(), s);
  }
  inst->db.reset(raw);
  for (size_t i = 0; i < kFamilyCount; ++i) inst->family[i] = inst->handles[i];
  return inst;
}

}  // namespace

struct Database::Impl {
  // Constant after open
  std::filesystem::path dir;
  DatabaseOptions options;
  std::shared_ptr<rocksdb::Cache> cache;

  // Lock order: write_mu, then mu, then fault_mu.
  std::mutex write_mu;  // held by every write and flush, and by recovery: one at a time
  // Shared: any use of `inst`; exclusive: replacing it (recovery).
  mutable std::shared_mutex mu;
  std::unique_ptr<Instance> inst;  // guarded by mu; null only if a recovery lost it entirely

  mutable std::mutex fault_mu;
  std::condition_variable fault_cv;  // wakes the recovery thread
  std::string fault;                 // guarded by fault_mu: why writes are refused, "" if healthy
  bool closing = false;              // guarded by fault_mu
  std::thread recoverer;             // started with the first fault

  ~Impl() {
    {
      std::lock_guard lock(fault_mu);
      closing = true;
    }
    fault_cv.notify_all();
    if (recoverer.joinable()) recoverer.join();
  }

  Status refusal(const std::string& why) const {
    return Status::InsufficientStorage("storage is read-only: " + why +
                                       "; completions go on, writes resume by themselves once "
                                       "the disk has room again");
  }

  // OK, or the refusal while faulted.
  Status check_writable() const {
    std::lock_guard lock(fault_mu);
    return fault.empty() ? Status::OK() : refusal(fault);
  }

  // Turns read-only (called with write_mu held) and returns the refusal for this write.
  Status enter_fault(const std::string& why) {
    {
      std::lock_guard lock(fault_mu);
      if (fault.empty()) {
        fault = why;
        log::error("storage fault: read-only until it recovers", {{"error", why}});
      }
      if (!recoverer.joinable()) recoverer = std::thread([this] { recover_loop(); });
    }
    fault_cv.notify_all();
    return refusal(why);
  }

  void recover_loop() {
    std::unique_lock lock(fault_mu);
    while (!closing) {
      fault_cv.wait_for(lock, options.recovery_interval);
      if (closing) break;
      if (fault.empty()) {
        fault_cv.wait(lock, [&] { return closing || !fault.empty(); });
        continue;
      }
      lock.unlock();
      const bool recovered = try_recover();
      lock.lock();
      if (recovered) {
        log::info("storage recovered: writes accepted again");
        fault.clear();
      }
    }
  }

  // One recovery attempt: RocksDB's Resume() on a read-write instance, else a fresh open (a
  // read-only instance stays in service until a read-write one replaces it).
  bool try_recover() {
    std::lock_guard writes(write_mu);
    {
      std::shared_lock lock(mu);
      if (inst && !inst->read_only && inst->db->Resume().ok()) return true;
    }
    std::unique_lock lock(mu);
    rocksdb::Status raw;
    if (inst && !inst->read_only) inst.reset();  // releases RocksDB's LOCK for the reopen
    auto fresh = open_instance(dir, cache, /*read_only=*/false, &raw);
    if (fresh.ok()) {
      inst = std::move(fresh).value();
      return true;
    }
    if (!inst) {
      auto ro = open_instance(dir, cache, /*read_only=*/true, &raw);
      if (ro.ok()) inst = std::move(ro).value();
    }
    return false;
  }
};

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& dir,
                                                 const DatabaseOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status::IOError("cannot create database directory " + dir.string() + ": " +
                           ec.message());
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::IOError("database directory " + dir.string() + " is not a directory");
  }

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  impl->cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  rocksdb::Status raw;
  auto inst = open_instance(dir, impl->cache, /*read_only=*/false, &raw);
  std::string fault;
  if (!inst.ok() && raw.IsNoSpace()) {
    // A full disk: serve what is stored, read-only, and recover when space returns.
    fault = "the database could not be opened for writing: " + describe_fault(raw);
    inst = open_instance(dir, impl->cache, /*read_only=*/true, &raw);
  }
  if (!inst.ok()) return inst.status();
  impl->inst = std::move(inst).value();

  std::unique_ptr<Database> db(new Database(std::move(impl)));
  QUILT_ASSIGN_OR_RETURN(auto stored, db->get(Family::kMeta, kSchemaKey));
  const std::string ours = std::to_string(kSchemaVersion);
  if (!stored) {
    if (!fault.empty()) return Status::IOError("cannot create database in " + dir.string() + ": " + fault);
    WriteBatch batch;
    batch.put(Family::kMeta, kSchemaKey, ours);
    QUILT_RETURN_IF_ERROR(db->write(batch, /*sync=*/true));
  } else if (*stored != ours) {
    return Status::IOError("database " + dir.string() + " has schema version '" + *stored +
                           "'; this build reads schema version " + ours);
  }
  if (!fault.empty()) {
    std::lock_guard writes(db->impl_->write_mu);
    (void)db->impl_->enter_fault(fault);
  }
  return db;
}

Status Database::writable() const { return impl_->check_writable(); }

Result<std::optional<std::string>> Database::get(Family family, std::string_view key) const {
  std::string value;
  std::shared_lock lock(impl_->mu);
  if (!impl_->inst) return Status::IOError("storage unavailable: " + impl_->check_writable().message());
  const Instance& in = *impl_->inst;
  rocksdb::Status s = in.db->Get(rocksdb::ReadOptions(), in.cf(family), slice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return io_error("get", family, s);
  return std::optional<std::string>(std::move(value));
}

Status Database::write(WriteBatch& batch, bool sync) {
  if (!batch.impl_) return Status::OK();  // a moved-from batch holds nothing
  std::lock_guard writes(impl_->write_mu);
  QUILT_RETURN_IF_ERROR(impl_->check_writable());
  std::shared_lock lock(impl_->mu);
  const Instance& in = *impl_->inst;  // never null while writable
  rocksdb::WriteBatch rb;
  for (const auto& op : batch.impl_->ops) {
    rocksdb::ColumnFamilyHandle* cf = in.cf(op.family);
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
  rocksdb::Status s = in.db->Write(options, &rb);
  if (is_storage_fault(s)) return impl_->enter_fault("a write failed: " + describe_fault(s));
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
  std::shared_lock lock(impl_->mu);
  if (!impl_->inst) return Status::IOError("storage unavailable: " + impl_->check_writable().message());
  const Instance& in = *impl_->inst;
  std::unique_ptr<rocksdb::Iterator> it(in.db->NewIterator(rocksdb::ReadOptions(), in.cf(family)));
  for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  if (!it->status().ok()) return io_error("scan", family, it->status());
  return out;
}

Status Database::flush() {
  // The WAL first (unsynced writes reach the disk), then the memtables, so a restart replays less.
  std::lock_guard writes(impl_->write_mu);
  QUILT_RETURN_IF_ERROR(impl_->check_writable());
  std::shared_lock lock(impl_->mu);
  const Instance& in = *impl_->inst;
  rocksdb::Status s = in.db->FlushWAL(/*sync=*/true);
  if (is_storage_fault(s)) return impl_->enter_fault("flushing the WAL failed: " + describe_fault(s));
  if (!s.ok()) return io_error("flush wal", s);
  std::vector<rocksdb::ColumnFamilyHandle*> ours(in.family.begin(), in.family.end());
  s = in.db->Flush(rocksdb::FlushOptions(), ours);
  if (is_storage_fault(s)) return impl_->enter_fault("a flush failed: " + describe_fault(s));
  if (!s.ok()) return io_error("flush", s);
  return Status::OK();
}

}  // namespace quilt::storage
