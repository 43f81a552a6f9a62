// Memory-mapped safetensors files, single-file or sharded through model.safetensors.index.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace quilt::engine {

// kI8 is no file dtype: the cpu backend's --quantize int8 weights (int8 values, one float32 scale
// per row kept beside them by the backend).
enum class DType { kF32, kF16, kBF16, kI8 };

const char* dtype_name(DType dtype);
int64_t dtype_size(DType dtype);

// A read-only view of one tensor inside a mapped file. Valid while its TensorStore lives.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // little-endian, row-major
  int64_t num_elements() const;
  std::string file;                 // file name, for error messages
};

// Converts any supported dtype to float32, exactly (bf16/f16 widen without rounding).
void to_float32(const TensorView& t, std::span<float> out);
std::vector<float> to_float32(const TensorView& t);

// A set of tensors by name, backed by one or more read-only memory maps.
// Thread-safe for concurrent reads after construction.
class TensorStore {
 public:
  // Opens one .safetensors file.
  static Result<std::unique_ptr<TensorStore>> open_file(const std::filesystem::path& file);
  // Opens a model directory: model.safetensors.index.json if present (every shard it names),
  // else model.safetensors. Errors name the file and the tensor.
  static Result<std::unique_ptr<TensorStore>> open_dir(const std::filesystem::path& dir);
  // Parses an in-memory safetensors image (used for uploads); `bytes` is copied.
  static Result<std::unique_ptr<TensorStore>> from_bytes(std::string bytes, const std::string& source);

  ~TensorStore();
  TensorStore(const TensorStore&) = delete;
  TensorStore& operator=(const TensorStore&) = delete;

  const TensorView* find(const std::string& name) const;
  // The tensor with `name` and exactly `shape`, or an error naming file, tensor, and both shapes.
  Result<const TensorView*> get(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  struct Mapping;
  TensorStore() = default;
  Status add_file(const std::filesystem::path& file);
  Status add_image(std::shared_ptr<Mapping> mapping, const std::string& source);

  std::string source_;  // the file, directory or upload name, for "not found" errors
  std::vector<std::shared_ptr<Mapping>> mappings_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace quilt::engine
