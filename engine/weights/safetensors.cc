// Safetensors parsing over read-only memory maps (or an owned copy for in-memory images).
#include "engine/weights/safetensors.h"
#include "common/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

namespace quilt::engine {

// Safetensors stores little-endian data and we hand out views of it without byte swapping.
static_assert(std::endian::native == std::endian::little, "Quilt assumes a little-endian host");

namespace {

using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we, so that a garbage length
// field cannot make us parse (or allocate for) gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return std::nullopt;
}

// A non-negative JSON integer, or nullopt (negative, fractional, or not a number).
std::optional<uint64_t> as_u64(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  return std::nullopt;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24 is exact in float32 (a normal float there).
    const float mag = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN keeping its payload
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

}  // namespace

// One mapped file or owned image. Tensor views point into it, so it lives as long as the store.
struct TensorStore::Mapping {
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (map_base != nullptr) munmap(map_base, map_size);
  }

  const std::byte* data = nullptr;
  size_t size = 0;
  void* map_base = nullptr;  // set when the bytes come from mmap
  size_t map_size = 0;
  std::string owned;  // set when the bytes come from from_bytes
};

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI8:
      return "I8";
  }
  return "?";
}

int64_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kI8:
      return 1;
  }
  return 0;
}

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void to_float32(const TensorView& t, std::span<float> out) {
  assert(static_cast<int64_t>(out.size()) == t.num_elements());
  // Never read past the tensor even if a caller passes a larger span.
  const size_t n = std::min(out.size(), static_cast<size_t>(t.num_elements()));
  if (n == 0) return;  // empty spans may have null data, which memcpy must not see
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out.data(), t.data, n * sizeof(float));
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, t.data + 2 * i, 2);  // memcpy: the data may be unaligned
        out[i] = std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
      }
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, t.data + 2 * i, 2);
        out[i] = half_to_float(v);
      }
      return;
    case DType::kI8:  // the integer values (a scale, where there is one, is the holder's)
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int8_t>(t.data[i]));
      return;
  }
}

std::vector<float> to_float32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.num_elements()));
  to_float32(t, out);
  return out;
}

TensorStore::~TensorStore() = default;

Result<std::unique_ptr<TensorStore>> TensorStore::open_file(const std::filesystem::path& file) {
  std::unique_ptr<TensorStore> store(new TensorStore());
  store->source_ = file.string();
  QUILT_RETURN_IF_ERROR(store->add_file(file));
  return store;
}

Result<std::unique_ptr<TensorStore>> TensorStore::open_dir(const std::filesystem::path& dir) {
  std::unique_ptr<TensorStore> store(new TensorStore());
  store->source_ = dir.string();
  const auto index_path = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (!std::filesystem::exists(index_path, ec)) {
    const auto single = dir / "model.safetensors";
    if (!std::filesystem::exists(single, ec)) {
      return Status::NotFound(dir.string() +
                              ": neither model.safetensors.index.json nor model.safetensors found");
    }
    QUILT_RETURN_IF_ERROR(store->add_file(single));
    return store;
  }

  QUILT_ASSIGN_OR_RETURN(std::string text, quilt::read_file(index_path));
  const std::string where = index_path.string();
  json index = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return Status::InvalidArgument(where + ": not a JSON object");
  }
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    return Status::InvalidArgument(where + ": \"weight_map\" must be an object");
  }
  std::map<std::string, std::string> tensor_to_shard;
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) {
      return Status::InvalidArgument(where + ": weight_map[\"" + tensor + "\"] must be a string");
    }
    const std::string name = shard.get<std::string>();
    // The index comes with the model, but a shard path must still stay inside the directory.
    const std::filesystem::path rel(name);
    bool escapes = rel.empty() || rel.is_absolute();
    for (const auto& part : rel) escapes = escapes || part == "..";
    if (escapes) {
      return Status::InvalidArgument(where + ": shard \"" + name + "\" of tensor '" + tensor +
                                     "' is not a file inside the model directory");
    }
    tensor_to_shard[tensor] = name;
    shards.insert(name);
  }
  for (const auto& shard : shards) QUILT_RETURN_IF_ERROR(store->add_file(dir / shard));
  for (const auto& [tensor, shard] : tensor_to_shard) {
    const std::string shard_path = (dir / shard).string();
    const TensorView* t = store->find(tensor);
    if (t == nullptr || t->file != shard_path) {
      return Status::InvalidArgument(where + ": tensor '" + tensor + "' is listed in shard " +
                                     shard + " but " + shard_path + " does not hold it");
    }
  }
  return store;
}

Result<std::unique_ptr<TensorStore>> TensorStore::from_bytes(std::string bytes,
                                                             const std::string& source) {
  std::unique_ptr<TensorStore> store(new TensorStore());
  store->source_ = source;
  auto mapping = std::make_shared<Mapping>();
  mapping->owned = std::move(bytes);
  mapping->data = reinterpret_cast<const std::byte*>(mapping->owned.data());
  mapping->size = mapping->owned.size();
  QUILT_RETURN_IF_ERROR(store->add_image(std::move(mapping), source));
  return store;
}

Status TensorStore::add_file(const std::filesystem::path& file) {
  const std::string where = file.string();
  const int fd = ::open(where.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(where + ": no such file");
    return Status::IOError(where + ": open failed: " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::IOError(where + ": stat failed: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(where + ": not a regular file");
  }
  auto mapping = std::make_shared<Mapping>();
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0) {  // mmap of length 0 fails; add_image reports the empty file as too short
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return Status::IOError(where + ": mmap failed: " + std::strerror(err));
    }
    mapping->map_base = p;
    mapping->map_size = size;
    mapping->data = static_cast<const std::byte*>(p);
    mapping->size = size;
  }
  ::close(fd);  // the mapping keeps the file's pages reachable
  return add_image(std::move(mapping), where);
}

Status TensorStore::add_image(std::shared_ptr<Mapping> mapping, const std::string& source) {
  const uint64_t size = mapping->size;
  if (size < 8) {
    return Status::InvalidArgument(source + ": too short for a safetensors file (" +
                                   std::to_string(size) + " bytes)");
  }
  uint64_t header_len;
  std::memcpy(&header_len, mapping->data, 8);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return Status::InvalidArgument(source + ": header length " + std::to_string(header_len) +
                                   " does not fit a file of " + std::to_string(size) +
                                   " bytes (truncated or not a safetensors file)");
  }
  const char* hbegin = reinterpret_cast<const char*>(mapping->data) + 8;
  json header = json::parse(hbegin, hbegin + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Status::InvalidArgument(source + ": header is not a JSON object");
  }
  const std::byte* data_begin = mapping->data + 8 + header_len;
  const uint64_t data_len = size - 8 - header_len;

  std::map<std::string, TensorView> parsed;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;  // free-form strings; nothing we need
    const std::string what = source + ": tensor '" + name + "'";
    if (!entry.is_object()) return Status::InvalidArgument(what + ": entry is not an object");
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) {
      return Status::InvalidArgument(what + ": \"dtype\" must be a string");
    }
    auto dtype = parse_dtype(dt->get<std::string>());
    if (!dtype) {
      return Status::InvalidArgument(what + ": unsupported dtype " + dt->get<std::string>() +
                                     " (supported: F32, F16, BF16)");
    }
    if (sh == entry.end() || !sh->is_array()) {
      return Status::InvalidArgument(what + ": \"shape\" must be an array");
    }
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    view.file = source;
    // Element count with overflow checks: a crafted shape must not wrap around to a small size.
    uint64_t elements = 1;
    for (const auto& d : *sh) {
      auto dim = as_u64(d);
      if (!dim || *dim > static_cast<uint64_t>(INT64_MAX)) {
        return Status::InvalidArgument(what + ": shape entries must be non-negative integers");
      }
      if (__builtin_mul_overflow(elements, *dim, &elements)) {
        return Status::InvalidArgument(what + ": shape is too large");
      }
      view.shape.push_back(static_cast<int64_t>(*dim));
    }
    if (off == entry.end() || !off->is_array() || off->size() != 2) {
      return Status::InvalidArgument(what + ": \"data_offsets\" must be [begin, end]");
    }
    auto begin = as_u64((*off)[0]);
    auto end = as_u64((*off)[1]);
    if (!begin || !end || *begin > *end || *end > data_len) {
      return Status::InvalidArgument(what + ": data_offsets out of range for a data section of " +
                                     std::to_string(data_len) + " bytes");
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(dtype_size(*dtype)), &bytes) ||
        bytes != *end - *begin) {
      return Status::InvalidArgument(what + ": shape " + shape_string(view.shape) + " of " +
                                     dtype_name(*dtype) + " needs a different byte length than " +
                                     std::to_string(*end - *begin));
    }
    view.data = data_begin + *begin;
    parsed.emplace(name, std::move(view));
  }

  // Only commit once the whole header is valid, so a failed add leaves the store unchanged.
  for (const auto& [name, view] : parsed) {
    auto it = tensors_.find(name);
    if (it != tensors_.end()) {
      return Status::InvalidArgument(source + ": tensor '" + name + "' is also in " +
                                     it->second.file);
    }
  }
  tensors_.merge(parsed);
  mappings_.push_back(std::move(mapping));
  return Status::OK();
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Result<const TensorView*> TensorStore::get(const std::string& name,
                                           const std::vector<int64_t>& shape) const {
  const TensorView* t = find(name);
  if (t == nullptr) return Status::NotFound(source_ + ": tensor '" + name + "' not found");
  if (t->shape != shape) {
    return Status::Unprocessable(t->file + ": tensor '" + name + "' has shape " +
                                 shape_string(t->shape) + ", expected " + shape_string(shape));
  }
  return t;
}

}  // namespace quilt::engine
