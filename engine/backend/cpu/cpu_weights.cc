#include "engine/backend/cpu/cpu_weights.h"

#include <cstring>
#include <string>
#include <vector>

#include "engine/backend/cpu/quantize.h"

namespace quilt::engine::cpu {
namespace {

// A weight's bytes, plus the per-row scales of an int8 weight.
class WeightBuffer final : public Buffer {
 public:
  explicit WeightBuffer(size_t bytes) : data_(bytes) {}
  void* data() override { return data_.data(); }
  size_t bytes() const override { return data_.size() + scales.size() * sizeof(float); }
  std::vector<float> scales;  // int8 only: one per row

 private:
  std::vector<std::byte> data_;
};

}  // namespace

Result<Tensor> make_weight(const TensorView& src, int64_t rows, int64_t cols, bool quantize_int8) {
  if (rows < 0 || cols < 0 || src.num_elements() != rows * cols) {
    return Status::Internal("cpu backend: " + src.name + " does not hold " + std::to_string(rows) +
                            "x" + std::to_string(cols) + " elements");
  }
  const bool matrix = rows > 1;
  // The token embedding and the output head stay unquantized (as llama.cpp keeps them at higher
  // precision): the embedding's error enters the residual stream unattenuated, the head's the
  // logits; on the test fixtures quantizing them doubles the logits error.
  const bool embedding_or_head = src.name.find("embed") != std::string::npos ||
                                 src.name.find("lm_head") != std::string::npos ||
                                 src.name.find("wte") != std::string::npos;
  DType dtype = DType::kF32;
  if (matrix && quantize_int8 && !embedding_or_head) {
    dtype = DType::kI8;
  } else if (matrix && src.dtype == DType::kBF16) {
    dtype = DType::kBF16;
  }
  const size_t n = static_cast<size_t>(rows * cols);
  auto buffer = std::make_shared<WeightBuffer>(n * static_cast<size_t>(dtype_size(dtype)));
  if (dtype == DType::kBF16) {
    std::memcpy(buffer->data(), src.data, n * 2);  // bf16 bits as the file has them
  } else if (dtype == DType::kI8) {
    const std::vector<float> f = to_float32(src);
    buffer->scales.resize(static_cast<size_t>(rows));
    quantize_rows_int8(f.data(), rows, cols, static_cast<int8_t*>(buffer->data()),
                       buffer->scales.data());
  } else {
    to_float32(src, std::span<float>(static_cast<float*>(buffer->data()), n));
  }
  Tensor t;
  t.data = buffer->data();
  t.buffer = std::move(buffer);
  t.dtype = dtype;
  t.rows = rows;
  t.cols = cols;
  return t;
}

Result<GemmWeights> gemm_weights(const Tensor& w) {
  if (w.data == nullptr || !w.contiguous()) {
    return Status::Internal("cpu backend: a matmul weight must be a contiguous tensor");
  }
  switch (w.dtype) {
    case DType::kF32: return GemmWeights{GemmWeightType::kF32, w.data, w.cols, nullptr};
    case DType::kBF16: return GemmWeights{GemmWeightType::kBF16, w.data, w.cols, nullptr};
    case DType::kI8: {
      const auto* b = dynamic_cast<const WeightBuffer*>(w.buffer.get());
      if (b == nullptr || static_cast<int64_t>(b->scales.size()) != w.rows ||
          w.data != const_cast<WeightBuffer*>(b)->data()) {
        return Status::Internal("cpu backend: an int8 weight without its scales");
      }
      return GemmWeights{GemmWeightType::kI8, w.data, w.cols, b->scales.data()};
    }
    case DType::kF16: break;
  }
  return Status::Internal(std::string("cpu backend: no matmul for ") + dtype_name(w.dtype) +
                          " weights");
}

void widen_row(const Tensor& w, int64_t row, float* dst) {
  const int64_t cols = w.cols;
  switch (w.dtype) {
    case DType::kBF16: {
      const auto* src = w.as<const uint16_t>() + row * w.stride();
      for (int64_t c = 0; c < cols; ++c) {
        const uint32_t bits = static_cast<uint32_t>(src[c]) << 16;
        std::memcpy(dst + c, &bits, 4);
      }
      return;
    }
    case DType::kI8: {
      const auto* b = dynamic_cast<const WeightBuffer*>(w.buffer.get());
      const float scale = b != nullptr ? b->scales[static_cast<size_t>(row)] : 1.f;
      const auto* src = w.as<const int8_t>() + row * w.stride();
      for (int64_t c = 0; c < cols; ++c) dst[c] = scale * static_cast<float>(src[c]);
      return;
    }
    default:
      std::memcpy(dst, w.as<const float>() + row * w.stride(), cols * sizeof(float));
  }
}

}  // namespace quilt::engine::cpu
