// The GEMM that the simulator's cuBLAS and cuBLASLt share: operands in their device dtypes, copied
// to float, multiplied by OpenBLAS (float32 accumulation), the result rounded to the output's
// dtype. Private to kernels/sim/.
#pragma once

#include <cuda_runtime.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace quilt::sim::blas {

// A matrix as it is stored: rows × cols (before any transpose), column-major with leading
// dimension ld (the stride between columns), or row-major (ld = stride between rows).
struct Matrix {
  const void* data = nullptr;
  cudaDataType type = CUDA_R_32F;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;
  bool row_major = false;
};

enum class Activation { kNone, kRelu, kGelu };

// D[m×n] = act(alpha · op(A)·op(B) + beta · C + bias), computed in float32 and stored as D.type.
// C is not read when beta == 0 (cuBLAS's rule: it may hold NaN). bias (length m) is optional.
struct Gemm {
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  Matrix a, b, c, d;  // a: m×k after op; b: k×n after op; c, d: m×n
  Activation act = Activation::kNone;
  const void* bias = nullptr;
  cudaDataType bias_type = CUDA_R_32F;
};

// CUDA_R_16BF, CUDA_R_16F and CUDA_R_32F; every other type is not supported.
bool supported_type(cudaDataType t);
size_t elem_size(cudaDataType t);

// Bytes from the first element to one past the last that a matrix touches (0 if empty).
size_t span_bytes(const Matrix& mat);

// Checks every operand span (sim::check_device_span, a fault report naming `what` otherwise) and,
// when all are valid, computes the product. Runs synchronously: call it from a stream op.
// Returns false (nothing written) after a fault.
bool run(const Gemm& g, const std::string& what);

// Reads one float scalar of `type` from device memory (pointer mode DEVICE); false on a fault.
bool read_device_scalar(const void* p, cudaDataType type, const std::string& what, float* out);

}  // namespace quilt::sim::blas
