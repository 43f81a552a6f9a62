// cuBLAS in the simulator: the handle and the GEMMs a CUDA LLM backend calls, with the toolkit's
// own signatures (cublas_v2.h), run in order on the handle's stream (so graph capture records them)
// and computed by sim_blas (OpenBLAS on float copies, output rounded to its dtype).
//
// Like cuBLAS, a call checks its arguments at once (CUBLAS_STATUS_INVALID_VALUE / NOT_SUPPORTED)
// and reads device memory only when the stream runs it: an operand outside any allocation is a
// fault report and a sticky cudaErrorIllegalAddress, never a crash. Handles are not thread-safe
// (as in cuBLAS: one handle per thread or a lock around it).
#include <cublas_v2.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/sim/sim_blas.h"
#include "kernels/sim/sim_runtime.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace quilt::sim::blas {
namespace {

// alpha and beta: read now (pointer mode HOST) or from device memory when the GEMM runs (DEVICE).
struct Scalars {
  bool on_device = false;
  float alpha = 1.0f, beta = 0.0f;
  const void* alpha_ptr = nullptr;
  const void* beta_ptr = nullptr;

  bool resolve(const std::string& what, float* a, float* b) const {
    if (!on_device) {
      *a = alpha;
      *b = beta;
      return true;
    }
    return read_device_scalar(alpha_ptr, CUDA_R_32F, what + " alpha", a) &&
           read_device_scalar(beta_ptr, CUDA_R_32F, what + " beta", b);
  }
};

cublasStatus_t take_scalars(const cublasContext* h, const void* alpha, const void* beta,
                            Scalars* s) {
  if (alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  s->on_device = h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE;
  if (s->on_device) {
    s->alpha_ptr = alpha;
    s->beta_ptr = beta;
  } else {
    s->alpha = *static_cast<const float*>(alpha);
    s->beta = *static_cast<const float*>(beta);
  }
  return CUBLAS_STATUS_SUCCESS;
}

bool trans_of(cublasOperation_t op, bool* trans) {
  if (op != CUBLAS_OP_N && op != CUBLAS_OP_T && op != CUBLAS_OP_C) return false;
  *trans = op != CUBLAS_OP_N;  // conjugation is the identity on real types
  return true;
}

// float32 accumulation in every flavour; 16F/64F/32I accumulation is not simulated.
bool accumulates_in_fp32(cublasComputeType_t t) {
  return t == CUBLAS_COMPUTE_32F || t == CUBLAS_COMPUTE_32F_PEDANTIC ||
         t == CUBLAS_COMPUTE_32F_FAST_16F || t == CUBLAS_COMPUTE_32F_FAST_16BF ||
         t == CUBLAS_COMPUTE_32F_FAST_TF32;
}

// One GEMM's shapes, checked as cuBLAS checks them; the pointers are filled in per batch entry.
struct Shape {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  cudaDataType atype{}, btype{}, ctype{};
  int64_t lda = 0, ldb = 0, ldc = 0;

  Gemm gemm(const void* a, const void* b, void* c, float alpha, float beta) const {
    Gemm g;
    g.trans_a = ta;
    g.trans_b = tb;
    g.m = m;
    g.n = n;
    g.k = k;
    g.alpha = alpha;
    g.beta = beta;
    g.a = Matrix{a, atype, ta ? k : m, ta ? m : k, lda, false};
    g.b = Matrix{b, btype, tb ? n : k, tb ? k : n, ldb, false};
    g.c = Matrix{c, ctype, m, n, ldc, false};
    g.d = g.c;
    return g;
  }
};

cublasStatus_t make_shape(cublasOperation_t transa, cublasOperation_t transb, int64_t m, int64_t n,
                          int64_t k, cudaDataType atype, int64_t lda, cudaDataType btype,
                          int64_t ldb, cudaDataType ctype, int64_t ldc, cublasComputeType_t compute,
                          Shape* s) {
  if (!trans_of(transa, &s->ta) || !trans_of(transb, &s->tb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max<int64_t>(1, s->ta ? k : m) || ldb < std::max<int64_t>(1, s->tb ? n : k) ||
      ldc < std::max<int64_t>(1, m)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // cuBLAS's table for 32F compute: A and B alike; C like them or float32.
  if (!accumulates_in_fp32(compute) || !supported_type(atype) || atype != btype ||
      (ctype != atype && ctype != CUDA_R_32F)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  s->m = m;
  s->n = n;
  s->k = k;
  s->atype = atype;
  s->btype = btype;
  s->ctype = ctype;
  s->lda = lda;
  s->ldb = ldb;
  s->ldc = ldc;
  return CUBLAS_STATUS_SUCCESS;
}

// The checks every GEMM entry makes before queuing its work: a handle, a valid shape and types,
// and the scalars (read now for host pointers, later for device ones).
cublasStatus_t prepare(cublasContext* h, cublasOperation_t transa, cublasOperation_t transb,
                       int64_t m, int64_t n, int64_t k, cudaDataType atype, int64_t lda,
                       cudaDataType btype, int64_t ldb, cudaDataType ctype, int64_t ldc,
                       cublasComputeType_t compute, const void* alpha, const void* beta, Shape* shape,
                       Scalars* scalars) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasStatus_t st =
      make_shape(transa, transb, m, n, k, atype, lda, btype, ldb, ctype, ldc, compute, shape);
  return st == CUBLAS_STATUS_SUCCESS ? take_scalars(h, alpha, beta, scalars) : st;
}

cublasStatus_t submit(cublasContext* h, const std::string& what, std::function<void()> op) {
  const cudaError_t err = enqueue(h->stream, what, std::move(op));
  if (err == cudaErrorInvalidResourceHandle) return CUBLAS_STATUS_INVALID_VALUE;
  return err == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace
}  // namespace quilt::sim::blas

using namespace quilt::sim::blas;  // NOLINT: this file is the C API's implementation

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetVersion_v2(cublasHandle_t handle, int* version) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (version == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *version = CUBLAS_VERSION;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (stream == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math_mode = mode;  // the simulator always accumulates in float32
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math_mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetPointerMode_v2(cublasHandle_t handle,
                                                    cublasPointerMode_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  handle->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetPointerMode_v2(cublasHandle_t handle,
                                                    cublasPointerMode_t* mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->pointer_mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace,
                                                  size_t workspaceSizeInBytes) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  // The simulator needs no workspace, but a buffer that is not device memory is a caller's bug.
  if (workspace != nullptr && workspaceSizeInBytes > 0 &&
      !quilt::sim::check_device_span(workspace, workspaceSizeInBytes, "cublasSetWorkspace")) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  handle->workspace = workspace;
  handle->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
    default:
      return "an error occurred (simulated cuBLAS)";
  }
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const void* alpha, const void* A, cudaDataType Atype,
                                         int lda, const void* B, cudaDataType Btype, int ldb,
                                         const void* beta, void* C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t) {
  Shape shape;
  Scalars s;
  const cublasStatus_t st = prepare(handle, transa, transb, m, n, k, Atype, lda, Btype, ldb, Ctype,
                                    ldc, computeType, alpha, beta, &shape, &s);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const std::string what = "cublasGemmEx";
  return submit(handle, what, [=] {
    float a, b;
    if (s.resolve(what, &a, &b)) run(shape.gemm(A, B, C, a, b), what);
  });
}

cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                                           cublasOperation_t transb, int m, int n, int k,
                                           const float* alpha, const float* A, int lda,
                                           const float* B, int ldb, const float* beta, float* C,
                                           int ldc) {
  Shape shape;
  Scalars s;
  const cublasStatus_t st =
      prepare(handle, transa, transb, m, n, k, CUDA_R_32F, lda, CUDA_R_32F, ldb, CUDA_R_32F, ldc,
              CUBLAS_COMPUTE_32F, alpha, beta, &shape, &s);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const std::string what = "cublasSgemm";
  return submit(handle, what, [=] {
    float a, b;
    if (s.resolve(what, &a, &b)) run(shape.gemm(A, B, C, a, b), what);
  });
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA,
    const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta, void* C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t) {
  Shape shape;
  Scalars s;
  const cublasStatus_t st = prepare(handle, transa, transb, m, n, k, Atype, lda, Btype, ldb, Ctype,
                                    ldc, computeType, alpha, beta, &shape, &s);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  const std::string what = "cublasGemmStridedBatchedEx";
  return submit(handle, what, [=] {
    float a, b;
    if (!s.resolve(what, &a, &b)) return;
    for (int i = 0; i < batchCount; ++i) {
      const auto* pa = static_cast<const char*>(A) + i * strideA * elem_size(Atype);
      const auto* pb = static_cast<const char*>(B) + i * strideB * elem_size(Btype);
      auto* pc = static_cast<char*>(C) + i * strideC * elem_size(Ctype);
      if (!run(shape.gemm(pa, pb, pc, a, b), what + " batch " + std::to_string(i))) return;
    }
  });
}

cublasStatus_t CUBLASWINAPI cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                                cublasOperation_t transb, int m, int n, int k,
                                                const void* alpha, const void* const Aarray[],
                                                cudaDataType Atype, int lda,
                                                const void* const Barray[], cudaDataType Btype,
                                                int ldb, const void* beta, void* const Carray[],
                                                cudaDataType Ctype, int ldc, int batchCount,
                                                cublasComputeType_t computeType, cublasGemmAlgo_t) {
  Shape shape;
  Scalars s;
  const cublasStatus_t st = prepare(handle, transa, transb, m, n, k, Atype, lda, Btype, ldb, Ctype,
                                    ldc, computeType, alpha, beta, &shape, &s);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
  const std::string what = "cublasGemmBatchedEx";
  return submit(handle, what, [=] {
    float a, b;
    if (!s.resolve(what, &a, &b)) return;
    // The pointer arrays live in device memory and are read when the GEMM runs, as on a GPU.
    const size_t array_bytes = static_cast<size_t>(batchCount) * sizeof(void*);
    if (!quilt::sim::check_device_span(Aarray, array_bytes, what + " Aarray") ||
        !quilt::sim::check_device_span(Barray, array_bytes, what + " Barray") ||
        !quilt::sim::check_device_span(Carray, array_bytes, what + " Carray")) {
      return;
    }
    for (int i = 0; i < batchCount; ++i) {
      if (!run(shape.gemm(Aarray[i], Barray[i], Carray[i], a, b),
               what + " batch " + std::to_string(i))) {
        return;
      }
    }
  });
}
