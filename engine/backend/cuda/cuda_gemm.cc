// Gemm: cuBLASLt plans per shape. Row-major out = x · wᵀ is, column-major, outᵀ = w · xᵀ with
// w read transposed: A = w (K × N, ld K, op T), B = x (K × M, ld K), D = out (N × M, ld N).
#include "engine/backend/cuda/cuda_gemm.h"

#include <library_types.h>

namespace quilt::engine::cuda {
namespace {

constexpr size_t kWorkspaceBytes = 32 << 20;  // what cuBLASLt's Hopper kernels ask for at most

cudaDataType cuda_type(DType t) {
  switch (t) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kI8:  // cpu-only weights (--quantize int8); make_backend refuses it for cuda
      break;
  }
  return CUDA_R_32F;
}

struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
};
struct LayoutDeleter {
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
};
struct PreferenceDeleter {
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using DescPtr = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
using LayoutPtr = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
using PreferencePtr = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, PreferenceDeleter>;

Result<LayoutPtr> make_layout(cudaDataType type, int64_t rows, int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t l = nullptr;
  QUILT_RETURN_IF_ERROR(QUILT_CUBLAS_STATUS(cublasLtMatrixLayoutCreate(
      &l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld)));
  return LayoutPtr(l);
}

}  // namespace

struct Gemm::Plan {
  DescPtr desc;
  LayoutPtr a, b, d;
  cublasLtMatmulAlgo_t algo;
};

Gemm::Gemm() = default;
Gemm::~Gemm() = default;

Status Gemm::init() {
  QUILT_RETURN_IF_ERROR(handle_.create());
  QUILT_ASSIGN_OR_RETURN(workspace_, DeviceMemory::create(kWorkspaceBytes));
  return Status::OK();
}

Result<const Gemm::Plan*> Gemm::plan(int64_t m, int64_t n, int64_t k, DType in_dtype,
                                     DType out_dtype) {
  const Key key{m, n, k, static_cast<int>(in_dtype) * 8 + static_cast<int>(out_dtype)};
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();

  auto p = std::make_unique<Plan>();
  cublasLtMatmulDesc_t desc = nullptr;
  QUILT_RETURN_IF_ERROR(
      QUILT_CUBLAS_STATUS(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F)));
  p->desc.reset(desc);
  const cublasOperation_t trans = CUBLAS_OP_T, no_trans = CUBLAS_OP_N;
  QUILT_RETURN_IF_ERROR(QUILT_CUBLAS_STATUS(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans))));
  QUILT_RETURN_IF_ERROR(QUILT_CUBLAS_STATUS(cublasLtMatmulDescSetAttribute(
      desc, CUBLASLT_MATMUL_DESC_TRANSB, &no_trans, sizeof(no_trans))));
  QUILT_ASSIGN_OR_RETURN(p->a, make_layout(cuda_type(in_dtype), k, n, k));
  QUILT_ASSIGN_OR_RETURN(p->b, make_layout(cuda_type(in_dtype), k, m, k));
  QUILT_ASSIGN_OR_RETURN(p->d, make_layout(cuda_type(out_dtype), n, m, n));

  cublasLtMatmulPreference_t pref_raw = nullptr;
  QUILT_RETURN_IF_ERROR(QUILT_CUBLAS_STATUS(cublasLtMatmulPreferenceCreate(&pref_raw)));
  PreferencePtr pref(pref_raw);
  const uint64_t ws = workspace_->bytes();
  QUILT_RETURN_IF_ERROR(QUILT_CUBLAS_STATUS(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws))));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  QUILT_RETURN_IF_ERROR(QUILT_CUBLAS_STATUS(
      cublasLtMatmulAlgoGetHeuristic(handle_.get(), desc, p->a.get(), p->b.get(), p->d.get(),
                                     p->d.get(), pref.get(), 1, &result, &found)));
  if (found == 0) {
    return Status::Internal("cuBLASLt offers no algorithm for a " + std::to_string(m) + "x" +
                            std::to_string(n) + "x" + std::to_string(k) + " " +
                            dtype_name(in_dtype) + " GEMM");
  }
  p->algo = result.algo;
  const Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

Status Gemm::run(const Tensor& x, const Tensor& w, Tensor& out, float beta, cudaStream_t stream) {
  if ((x.dtype != DType::kBF16 && x.dtype != DType::kF16) || w.dtype != x.dtype ||
      (out.dtype != x.dtype && out.dtype != DType::kF32)) {
    return Status::Internal(
        "cuda backend: matmul takes two fp16 or bf16 inputs and an output of their dtype or float32");
  }
  if (!x.contiguous() || !w.contiguous() || !out.contiguous()) {
    return Status::Internal("cuda backend: matmul takes contiguous tensors");
  }
  if (x.cols != w.cols || out.cols != w.rows || out.rows != x.rows) {
    return Status::Internal("cuda backend: matmul shapes do not agree");
  }
  if (x.rows == 0) return Status::OK();
  QUILT_ASSIGN_OR_RETURN(const Plan* p, plan(x.rows, w.rows, x.cols, x.dtype, out.dtype));
  const float alpha = 1.0f;
  return QUILT_CUBLAS_STATUS(cublasLtMatmul(
      handle_.get(), p->desc.get(), &alpha, w.data, p->a.get(), x.data, p->b.get(), &beta, out.data,
      p->d.get(), out.data, p->d.get(), &p->algo, workspace_->data(), workspace_->bytes(), stream));
}

}  // namespace quilt::engine::cuda
