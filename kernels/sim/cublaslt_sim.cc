// cuBLASLt in the simulator: descriptors, a heuristic that offers one algorithm, and cublasLtMatmul
// (D = epilogue(alpha · op(A)·op(B) + beta · C)) with the toolkit's signatures (cublasLt.h), run on
// the given stream and computed by sim_blas (OpenBLAS on float copies, D rounded to its dtype).
//
// Simulated: float32 compute types, scale type float32, pointer modes HOST and DEVICE, TRANSA/B,
// column- and row-major layouts, strided batches, epilogues DEFAULT, RELU, GELU, BIAS and their
// BIAS combinations (bias of D's rows, dtype D's or BIAS_DATA_TYPE). Anything else (aux outputs,
// gradients, FP8 scales, vector pointer modes, pointer-array batches, planar complex) answers
// CUBLAS_STATUS_NOT_SUPPORTED rather than computing something else. The state of each descriptor
// lives inside the toolkit's semi-opaque struct, so the *Init helpers work too.
#include <cublasLt.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

#include "kernels/sim/sim_blas.h"
#include "kernels/sim/sim_runtime.h"

struct cublasLtContext {
  int unused = 0;  // the simulator keeps no per-handle state
};

namespace quilt::sim::blas {
namespace {

struct MatmulDesc {
  int32_t compute_type = CUBLAS_COMPUTE_32F;
  int32_t scale_type = CUDA_R_32F;
  int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
  int32_t transa = CUBLAS_OP_N;
  int32_t transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int64_t bias_batch_stride = 0;
  int32_t bias_type = -1;  // -1: D's type
  int32_t sm_count_target = 0;
  int8_t fast_accum = 0;
};

struct Layout {
  uint32_t type = CUDA_R_32F;
  int32_t order = CUBLASLT_ORDER_COL;
  uint64_t rows = 0;
  uint64_t cols = 0;
  int64_t ld = 0;
  int32_t batch_count = 1;
  int64_t batch_stride = 0;
  int64_t plane_offset = 0;
  uint32_t batch_mode = 0;
};

struct Preference {
  uint32_t search_mode = 0;
  uint64_t max_workspace_bytes = 0;
};

static_assert(sizeof(MatmulDesc) <= sizeof(cublasLtMatmulDescOpaque_t));
static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t));
static_assert(sizeof(Preference) <= sizeof(cublasLtMatmulPreferenceOpaque_t));
static_assert(std::is_trivially_copyable_v<MatmulDesc> && std::is_trivially_copyable_v<Layout>);

MatmulDesc* state(cublasLtMatmulDesc_t d) { return reinterpret_cast<MatmulDesc*>(d->data); }
Layout* state(cublasLtMatrixLayout_t l) { return reinterpret_cast<Layout*>(l->data); }
Preference* state(cublasLtMatmulPreference_t p) { return reinterpret_cast<Preference*>(p->data); }

// Copies an attribute in or out of a field of exactly sizeInBytes, as cuBLASLt insists.
template <typename Field>
cublasStatus_t set_field(Field* field, const void* buf, size_t size) {
  if (buf == nullptr || size != sizeof(Field)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, sizeof(Field));
  return CUBLAS_STATUS_SUCCESS;
}
template <typename Field>
cublasStatus_t get_field(const Field* field, void* buf, size_t size, size_t* written) {
  if (size == 0) {
    if (written == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    *written = sizeof(Field);
    return CUBLAS_STATUS_SUCCESS;
  }
  if (buf == nullptr || size != sizeof(Field)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(buf, field, sizeof(Field));
  if (written != nullptr) *written = sizeof(Field);
  return CUBLAS_STATUS_SUCCESS;
}

// Calls f(field pointer) for a matmul descriptor attribute; NOT_SUPPORTED for the unsimulated.
template <typename F>
cublasStatus_t with_desc_field(MatmulDesc* d, cublasLtMatmulDescAttributes_t attr, F&& f) {
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
      return f(&d->compute_type);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
      return f(&d->scale_type);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
      return f(&d->pointer_mode);
    case CUBLASLT_MATMUL_DESC_TRANSA:
      return f(&d->transa);
    case CUBLASLT_MATMUL_DESC_TRANSB:
      return f(&d->transb);
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      return f(&d->epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      return f(&d->bias);
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE:
      return f(&d->bias_batch_stride);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return f(&d->bias_type);
    case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET:
      return f(&d->sm_count_target);
    case CUBLASLT_MATMUL_DESC_FAST_ACCUM:
      return f(&d->fast_accum);
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

template <typename F>
cublasStatus_t with_layout_field(Layout* l, cublasLtMatrixLayoutAttribute_t attr, F&& f) {
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE:
      return f(&l->type);
    case CUBLASLT_MATRIX_LAYOUT_ORDER:
      return f(&l->order);
    case CUBLASLT_MATRIX_LAYOUT_ROWS:
      return f(&l->rows);
    case CUBLASLT_MATRIX_LAYOUT_COLS:
      return f(&l->cols);
    case CUBLASLT_MATRIX_LAYOUT_LD:
      return f(&l->ld);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
      return f(&l->batch_count);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      return f(&l->batch_stride);
    case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET:
      return f(&l->plane_offset);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE:
      return f(&l->batch_mode);
    default:
      return CUBLAS_STATUS_INVALID_VALUE;
  }
}

bool fp32_compute(int32_t t) {
  return t == CUBLAS_COMPUTE_32F || t == CUBLAS_COMPUTE_32F_PEDANTIC ||
         t == CUBLAS_COMPUTE_32F_FAST_16F || t == CUBLAS_COMPUTE_32F_FAST_16BF ||
         t == CUBLAS_COMPUTE_32F_FAST_TF32;
}

bool epilogue_of(uint32_t e, Activation* act, bool* bias) {
  switch (e) {
    case CUBLASLT_EPILOGUE_DEFAULT:
      *act = Activation::kNone;
      *bias = false;
      return true;
    case CUBLASLT_EPILOGUE_RELU:
      *act = Activation::kRelu;
      *bias = false;
      return true;
    case CUBLASLT_EPILOGUE_GELU:
      *act = Activation::kGelu;
      *bias = false;
      return true;
    case CUBLASLT_EPILOGUE_BIAS:
      *act = Activation::kNone;
      *bias = true;
      return true;
    case CUBLASLT_EPILOGUE_RELU_BIAS:
      *act = Activation::kRelu;
      *bias = true;
      return true;
    case CUBLASLT_EPILOGUE_GELU_BIAS:
      *act = Activation::kGelu;
      *bias = true;
      return true;
    default:
      return false;
  }
}

bool layout_ok(const Layout& l) {
  if (l.order != CUBLASLT_ORDER_COL && l.order != CUBLASLT_ORDER_ROW) return false;
  const uint64_t inner = l.order == CUBLASLT_ORDER_COL ? l.rows : l.cols;
  return l.ld >= 1 && static_cast<uint64_t>(l.ld) >= inner && l.batch_count >= 1;
}

Matrix matrix_of(const Layout& l, const void* data) {
  return Matrix{data,
                static_cast<cudaDataType>(l.type),
                static_cast<int64_t>(l.rows),
                static_cast<int64_t>(l.cols),
                l.ld,
                l.order == CUBLASLT_ORDER_ROW};
}

// One matmul, validated as far as the descriptors go (no device memory read).
struct Plan {
  Gemm gemm;  // pointers of batch 0
  int32_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0, stride_d = 0, stride_bias = 0;  // bytes
  bool bias = false;
  bool device_scalars = false;
};

cublasStatus_t plan(const MatmulDesc& d, const Layout& a, const Layout& b, const Layout& c,
                    const Layout& dl, Plan* p) {
  if (!fp32_compute(d.compute_type) || d.scale_type != CUDA_R_32F) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (d.pointer_mode != CUBLASLT_POINTER_MODE_HOST &&
      d.pointer_mode != CUBLASLT_POINTER_MODE_DEVICE) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  for (const Layout* l : {&a, &b, &c, &dl}) {
    if (l->plane_offset != 0 || l->batch_mode != 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (l->order != CUBLASLT_ORDER_COL && l->order != CUBLASLT_ORDER_ROW) {
      return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!layout_ok(*l)) return CUBLAS_STATUS_INVALID_VALUE;
  }
  const auto at = static_cast<cudaDataType>(a.type), bt = static_cast<cudaDataType>(b.type);
  const auto ct = static_cast<cudaDataType>(c.type), dt = static_cast<cudaDataType>(dl.type);
  if (!supported_type(at) || at != bt || ct != dt || (dt != at && dt != CUDA_R_32F)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  Gemm& g = p->gemm;
  if ((d.transa != CUBLAS_OP_N && d.transa != CUBLAS_OP_T) ||
      (d.transb != CUBLAS_OP_N && d.transb != CUBLAS_OP_T)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  g.trans_a = d.transa == CUBLAS_OP_T;
  g.trans_b = d.transb == CUBLAS_OP_T;
  g.m = static_cast<int64_t>(dl.rows);
  g.n = static_cast<int64_t>(dl.cols);
  g.k = static_cast<int64_t>(g.trans_a ? a.rows : a.cols);
  const auto a_m = static_cast<int64_t>(g.trans_a ? a.cols : a.rows);
  const auto b_k = static_cast<int64_t>(g.trans_b ? b.cols : b.rows);
  const auto b_n = static_cast<int64_t>(g.trans_b ? b.rows : b.cols);
  if (a_m != g.m || b_k != g.k || b_n != g.n || c.rows != dl.rows || c.cols != dl.cols) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (a.batch_count != dl.batch_count || b.batch_count != dl.batch_count ||
      c.batch_count != dl.batch_count) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (!epilogue_of(d.epilogue, &g.act, &p->bias)) return CUBLAS_STATUS_NOT_SUPPORTED;
  g.bias_type = d.bias_type < 0 ? dt : static_cast<cudaDataType>(d.bias_type);
  if (p->bias && !supported_type(g.bias_type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  g.a = matrix_of(a, nullptr);
  g.b = matrix_of(b, nullptr);
  g.c = matrix_of(c, nullptr);
  g.d = matrix_of(dl, nullptr);
  p->batch = dl.batch_count;
  p->stride_a = a.batch_stride * static_cast<int64_t>(elem_size(at));
  p->stride_b = b.batch_stride * static_cast<int64_t>(elem_size(bt));
  p->stride_c = c.batch_stride * static_cast<int64_t>(elem_size(ct));
  p->stride_d = dl.batch_stride * static_cast<int64_t>(elem_size(dt));
  p->stride_bias = d.bias_batch_stride * static_cast<int64_t>(elem_size(g.bias_type));
  p->device_scalars = d.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE;
  return CUBLAS_STATUS_SUCCESS;
}

template <typename T>
T* offset_by(T* p, int64_t bytes) {
  using Byte = std::conditional_t<std::is_const_v<T>, const char, char>;
  return reinterpret_cast<T*>(reinterpret_cast<Byte*>(p) + bytes);
}

}  // namespace
}  // namespace quilt::sim::blas

using namespace quilt::sim::blas;  // NOLINT: this file is the C API's implementation

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t* lightHandle) {
  if (lightHandle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *lightHandle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
  if (lightHandle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete lightHandle;
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasLtGetStatusName(cublasStatus_t status) {
  return cublasGetStatusName(status);
}

const char* CUBLASWINAPI cublasLtGetStatusString(cublasStatus_t status) {
  return cublasGetStatusString(status);
}

// ---- matmul descriptor ----

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescInit_internal(cublasLtMatmulDesc_t matmulDesc,
                                                            size_t size,
                                                            cublasComputeType_t computeType,
                                                            cudaDataType_t scaleType) {
  if (matmulDesc == nullptr || size < sizeof(MatmulDesc)) return CUBLAS_STATUS_ALLOC_FAILED;
  MatmulDesc* d = new (matmulDesc->data) MatmulDesc;
  d->compute_type = computeType;
  d->scale_type = scaleType;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc,
                                                     cublasComputeType_t computeType,
                                                     cudaDataType_t scaleType) {
  if (matmulDesc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* d = new cublasLtMatmulDescOpaque_t{};
  cublasLtMatmulDescInit_internal(d, sizeof(*d), computeType, scaleType);
  *matmulDesc = d;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
  delete matmulDesc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr,
                                                           const void* buf, size_t sizeInBytes) {
  if (matmulDesc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return with_desc_field(state(matmulDesc), attr,
                         [&](auto* field) { return set_field(field, buf, sizeInBytes); });
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr,
                                                           void* buf, size_t sizeInBytes,
                                                           size_t* sizeWritten) {
  if (matmulDesc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return with_desc_field(state(matmulDesc), attr, [&](auto* field) {
    return get_field(field, buf, sizeInBytes, sizeWritten);
  });
}

// ---- matrix layout ----

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutInit_internal(cublasLtMatrixLayout_t matLayout,
                                                              size_t size, cudaDataType type,
                                                              uint64_t rows, uint64_t cols,
                                                              int64_t ld) {
  if (matLayout == nullptr || size < sizeof(Layout)) return CUBLAS_STATUS_ALLOC_FAILED;
  Layout* l = new (matLayout->data) Layout;
  l->type = type;
  l->rows = rows;
  l->cols = cols;
  l->ld = ld;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout,
                                                       cudaDataType type, uint64_t rows,
                                                       uint64_t cols, int64_t ld) {
  if (matLayout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* l = new cublasLtMatrixLayoutOpaque_t{};
  cublasLtMatrixLayoutInit_internal(l, sizeof(*l), type, rows, cols, ld);
  *matLayout = l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
  delete matLayout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout,
                                                             cublasLtMatrixLayoutAttribute_t attr,
                                                             const void* buf, size_t sizeInBytes) {
  if (matLayout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return with_layout_field(state(matLayout), attr,
                           [&](auto* field) { return set_field(field, buf, sizeInBytes); });
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t matLayout,
                                                             cublasLtMatrixLayoutAttribute_t attr,
                                                             void* buf, size_t sizeInBytes,
                                                             size_t* sizeWritten) {
  if (matLayout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return with_layout_field(state(matLayout), attr, [&](auto* field) {
    return get_field(field, buf, sizeInBytes, sizeWritten);
  });
}

// ---- preference ----

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceInit_internal(cublasLtMatmulPreference_t pref,
                                                                  size_t size) {
  if (pref == nullptr || size < sizeof(Preference)) return CUBLAS_STATUS_ALLOC_FAILED;
  new (pref->data) Preference;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (pref == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* p = new cublasLtMatmulPreferenceOpaque_t{};
  cublasLtMatmulPreferenceInit_internal(p, sizeof(*p));
  *pref = p;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
    size_t sizeInBytes) {
  if (pref == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  Preference* p = state(pref);
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE:
      return set_field(&p->search_mode, buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      return set_field(&p->max_workspace_bytes, buf, sizeInBytes);
    default: {
      // Alignment, waves, reduction and implementation masks only steer the choice among
      // algorithms; the simulator has one. Accept them when they are well formed.
      if (buf == nullptr || (sizeInBytes != 4 && sizeInBytes != 8)) {
        return CUBLAS_STATUS_INVALID_VALUE;
      }
      return CUBLAS_STATUS_SUCCESS;
    }
  }
}

// ---- heuristic and matmul ----

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount) {
  if (lightHandle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (operationDesc == nullptr || Adesc == nullptr || Bdesc == nullptr || Cdesc == nullptr ||
      Ddesc == nullptr || preference == nullptr || requestedAlgoCount < 1 ||
      heuristicResultsArray == nullptr || returnAlgoCount == nullptr) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  *returnAlgoCount = 0;
  Plan p;
  const cublasStatus_t st =
      plan(*state(operationDesc), *state(Adesc), *state(Bdesc), *state(Cdesc), *state(Ddesc), &p);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  cublasLtMatmulHeuristicResult_t& r = heuristicResultsArray[0];
  std::memset(&r, 0, sizeof(r));
  r.algo.data[0] = 0x5157494c54;  // "QUILT": marks the simulator's one algorithm
  r.workspaceSize = 0;
  r.state = CUBLAS_STATUS_SUCCESS;
  r.wavesCount = 1.0f;
  *returnAlgoCount = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmul(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha,
    const void* A, cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc,
    const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
    cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t*, void* workspace,
    size_t workspaceSizeInBytes, cudaStream_t stream) {
  if (lightHandle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (computeDesc == nullptr || Adesc == nullptr || Bdesc == nullptr || Cdesc == nullptr ||
      Ddesc == nullptr || alpha == nullptr || beta == nullptr) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  Plan p;
  const MatmulDesc& desc = *state(computeDesc);
  cublasStatus_t st = plan(desc, *state(Adesc), *state(Bdesc), *state(Cdesc), *state(Ddesc), &p);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (p.bias && desc.bias == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  const void* bias = p.bias ? desc.bias : nullptr;
  float host_alpha = 1.0f, host_beta = 0.0f;
  if (!p.device_scalars) {
    host_alpha = *static_cast<const float*>(alpha);
    host_beta = *static_cast<const float*>(beta);
  }
  if (p.gemm.m == 0 || p.gemm.n == 0) return CUBLAS_STATUS_SUCCESS;

  const std::string what = "cublasLtMatmul";
  const cudaError_t err = quilt::sim::enqueue(stream, what, [=] {
    Gemm g = p.gemm;
    if (p.device_scalars) {
      if (!read_device_scalar(alpha, CUDA_R_32F, what + " alpha", &g.alpha) ||
          !read_device_scalar(beta, CUDA_R_32F, what + " beta", &g.beta)) {
        return;
      }
    } else {
      g.alpha = host_alpha;
      g.beta = host_beta;
    }
    if (workspace != nullptr && workspaceSizeInBytes > 0 &&
        !quilt::sim::check_device_span(workspace, workspaceSizeInBytes, what + " workspace")) {
      return;
    }
    for (int32_t i = 0; i < p.batch; ++i) {
      g.a.data = offset_by(A, i * p.stride_a);
      g.b.data = offset_by(B, i * p.stride_b);
      g.c.data = offset_by(C, i * p.stride_c);
      g.d.data = offset_by(static_cast<const void*>(D), i * p.stride_d);
      g.bias = bias == nullptr ? nullptr : offset_by(bias, i * p.stride_bias);
      if (!run(g, p.batch == 1 ? what : what + " batch " + std::to_string(i))) return;
    }
  });
  if (err == cudaErrorInvalidResourceHandle) return CUBLAS_STATUS_INVALID_VALUE;
  return err == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}
