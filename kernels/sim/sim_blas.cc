// The simulator's shared GEMM: float copies of bf16/fp16/fp32 operands, OpenBLAS sgemm, rounding.
#include "kernels/sim/sim_blas.h"

#include <cblas.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/sim/sim_runtime.h"

namespace quilt::sim::blas {
namespace {

float load(const void* base, cudaDataType type, int64_t index) {
  switch (type) {
    case CUDA_R_16BF:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
    case CUDA_R_16F:
      return __half2float(static_cast<const __half*>(base)[index]);
    default:
      return static_cast<const float*>(base)[index];
  }
}

void store(void* base, cudaDataType type, int64_t index, float v) {
  switch (type) {
    case CUDA_R_16BF:
      static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(v);
      break;
    case CUDA_R_16F:
      static_cast<__half*>(base)[index] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(base)[index] = v;
  }
}

int64_t offset(const Matrix& mat, int64_t i, int64_t j) {
  return mat.row_major ? i * mat.ld + j : i + j * mat.ld;
}

// The stored matrix as dense column-major floats (ld = rows).
std::vector<float> to_float(const Matrix& mat) {
  std::vector<float> out(static_cast<size_t>(mat.rows * mat.cols));
  for (int64_t j = 0; j < mat.cols; ++j) {
    for (int64_t i = 0; i < mat.rows; ++i) {
      out[static_cast<size_t>(i + j * mat.rows)] = load(mat.data, mat.type, offset(mat, i, j));
    }
  }
  return out;
}

float activate(Activation act, float x) {
  switch (act) {
    case Activation::kRelu:
      return x > 0.0f ? x : 0.0f;
    case Activation::kGelu: {
      // cuBLASLt's GELU is the tanh approximation.
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    default:
      return x;
  }
}

bool check(const Matrix& mat, const std::string& what, const char* operand) {
  const size_t bytes = span_bytes(mat);
  if (bytes == 0) return true;
  return check_device_span(mat.data, bytes, what + " operand " + operand);
}

}  // namespace

bool supported_type(cudaDataType t) {
  return t == CUDA_R_16BF || t == CUDA_R_16F || t == CUDA_R_32F;
}

size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

size_t span_bytes(const Matrix& mat) {
  if (mat.rows <= 0 || mat.cols <= 0) return 0;
  const int64_t outer = mat.row_major ? mat.rows : mat.cols;
  const int64_t inner = mat.row_major ? mat.cols : mat.rows;
  return static_cast<size_t>((outer - 1) * mat.ld + inner) * elem_size(mat.type);
}

bool read_device_scalar(const void* p, cudaDataType type, const std::string& what, float* out) {
  if (!check_device_span(p, elem_size(type), what)) return false;
  *out = load(p, type, 0);
  return true;
}

bool run(const Gemm& g, const std::string& what) {
  if (g.m <= 0 || g.n <= 0) return true;
  const bool read_c = g.beta != 0.0f;
  bool ok = true;
  if (g.k > 0) ok = check(g.a, what, "A") && check(g.b, what, "B");
  if (ok && read_c) ok = check(g.c, what, "C");
  if (ok) ok = check(g.d, what, "D");
  if (ok && g.bias != nullptr) {
    ok = check_device_span(g.bias, static_cast<size_t>(g.m) * elem_size(g.bias_type),
                           what + " bias");
  }
  if (!ok) return false;

  std::vector<float> acc(static_cast<size_t>(g.m * g.n), 0.0f);
  if (g.k > 0) {
    const std::vector<float> a = to_float(g.a);
    const std::vector<float> b = to_float(g.b);
    cblas_sgemm(CblasColMajor, g.trans_a ? CblasTrans : CblasNoTrans,
                g.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(g.m), static_cast<int>(g.n),
                static_cast<int>(g.k), 1.0f, a.data(), static_cast<int>(g.a.rows), b.data(),
                static_cast<int>(g.b.rows), 0.0f, acc.data(), static_cast<int>(g.m));
  }
  // C is read in full before D is written: C and D may be the same memory.
  std::vector<float> c;
  if (read_c) c = to_float(g.c);
  void* d = const_cast<void*>(g.d.data);
  for (int64_t j = 0; j < g.n; ++j) {
    for (int64_t i = 0; i < g.m; ++i) {
      const size_t at = static_cast<size_t>(i + j * g.m);
      float v = g.alpha * acc[at];
      if (read_c) v += g.beta * c[at];
      if (g.bias != nullptr) v += load(g.bias, g.bias_type, i);
      store(d, g.d.type, offset(g.d, i, j), activate(g.act, v));
    }
  }
  return true;
}

}  // namespace quilt::sim::blas
