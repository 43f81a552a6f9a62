// cuBLAS and cuBLASLt GEMMs against a double-precision loop: a hand-checked case, every transpose
// with padded leading dimensions, bf16 rounding of the output, the batched forms, cuBLASLt's bias
// epilogue, and graph capture. Only public CUDA API, so the same checks run on a GPU (real cuBLAS)
// and in the simulator (kernels/sim); the planted-fault cases need the simulator.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/cuda_check.h"

#ifdef QUILT_CUDA_SIM
#include "kernels/sim/sim_runtime.h"
#endif

namespace quilt::kernels {
namespace {

bool cuda_device_present(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    *why = cudaGetErrorString(err);
    (void)cudaGetLastError();
    return false;
  }
  if (n == 0) *why = "cudaGetDeviceCount found 0 devices";
  return n > 0;
}

#define QUILT_SKIP_WITHOUT_CUDA_DEVICE()                                         \
  do {                                                                           \
    std::string why_;                                                            \
    if (!cuda_device_present(&why_)) GTEST_SKIP() << "no CUDA device: " << why_; \
  } while (0)

float bf16_round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& f) {
  std::vector<__nv_bfloat16> out(f.size());
  for (size_t i = 0; i < f.size(); ++i) out[i] = __float2bfloat16_rn(f[i]);
  return out;
}

std::vector<float> to_float(const std::vector<__nv_bfloat16>& b) {
  std::vector<float> out(b.size());
  for (size_t i = 0; i < b.size(); ++i) out[i] = __bfloat162float(b[i]);
  return out;
}

// Values already representable in bf16, so the reference and the device see the same inputs.
std::vector<float> random_bf16_values(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = bf16_round(dist(rng));
  return v;
}

// Column-major GEMM in double: C = alpha · op(A)·op(B) + beta · C; mag gets Σ|terms| per element.
struct GemmRef {
  bool ta, tb;
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;

  void run(const std::vector<float>& a, const std::vector<float>& b, std::vector<double>& c,
           std::vector<double>& mag) const {
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < m; ++i) {
        double s = 0, sm = 0;
        for (int l = 0; l < k; ++l) {
          const double x =
              ta ? a[l + static_cast<size_t>(i) * lda] : a[i + static_cast<size_t>(l) * lda];
          const double y =
              tb ? b[j + static_cast<size_t>(l) * ldb] : b[l + static_cast<size_t>(j) * ldb];
          s += x * y;
          sm += std::fabs(x * y);
        }
        const size_t at = i + static_cast<size_t>(j) * ldc;
        mag[at] = std::fabs(alpha) * sm + std::fabs(beta * c[at]);
        c[at] = alpha * s + beta * c[at];
      }
    }
  }
  size_t a_elems() const { return static_cast<size_t>(lda) * (ta ? m : k); }
  size_t b_elems() const { return static_cast<size_t>(ldb) * (tb ? k : n); }
  size_t c_elems() const { return static_cast<size_t>(ldc) * n; }
};

// Float32 accumulation of bf16 products, then one bf16 rounding: within 2^-8 of the exact value
// relative to the magnitude of the terms.
void expect_close_bf16(const std::vector<float>& got, const std::vector<double>& want,
                       const std::vector<double>& mag, const GemmRef& g, const std::string& what) {
  for (int j = 0; j < g.n; ++j) {
    for (int i = 0; i < g.m; ++i) {
      const size_t at = i + static_cast<size_t>(j) * g.ldc;
      const double tol = mag[at] * (1.0 / 256 + 1e-5) + 1e-6;
      ASSERT_NEAR(got[at], want[at], tol) << what << " at (" << i << ", " << j << ")";
    }
  }
}

class CublasCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    QUILT_SKIP_WITHOUT_CUDA_DEVICE();
    ASSERT_EQ(cublasCreate(&handle_), CUBLAS_STATUS_SUCCESS);
  }
  void TearDown() override {
    if (handle_ != nullptr) {
      EXPECT_EQ(cublasDestroy(handle_), CUBLAS_STATUS_SUCCESS);
    }
  }
  cublasHandle_t handle_ = nullptr;
};

TEST_F(CublasCudaTest, SgemmHandChecked) {
  // A = [1 2 3; 4 5 6] (2×3), B = [1 0; 0 1; 1 1] (3×2), column-major.
  const std::vector<float> a = {1, 4, 2, 5, 3, 6};
  const std::vector<float> b = {1, 0, 1, 0, 1, 1};
  const std::vector<float> c0 = {10, 20, 30, 40};
  DeviceBuffer<float> da(a), db(b), dc(c0);
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
  const float alpha = 2.0f, beta = 0.5f;
  ASSERT_EQ(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, da.get(), 2, db.get(),
                        3, &beta, dc.get(), 2),
            CUBLAS_STATUS_SUCCESS);
  std::vector<float> c;
  ASSERT_EQ(dc.copy_to_host(c), cudaSuccess);
  // A·B = [4 5; 10 11]; 2·A·B + 0.5·C = [8+5 10+15; 20+10 22+20].
  EXPECT_EQ(c, (std::vector<float>{13, 30, 25, 42}));
}

TEST_F(CublasCudaTest, GemmExBf16EveryTransposeAgainstDoubleLoop) {
  uint64_t seed = 1;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      const int m = 37, n = 19, k = 70;
      GemmRef g{ta, tb, m, n, k, (ta ? k : m) + 3, (tb ? n : k) + 5, m + 2, 0.75f, -0.5f};
      const auto a = random_bf16_values(g.a_elems(), seed++);
      const auto b = random_bf16_values(g.b_elems(), seed++);
      const auto c0 = random_bf16_values(g.c_elems(), seed++);
      DeviceBuffer<__nv_bfloat16> da(to_bf16(a)), db(to_bf16(b)), dc(to_bf16(c0));
      ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
      ASSERT_EQ(cublasGemmEx(handle_, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &g.alpha, da.get(),
                             CUDA_R_16BF, g.lda, db.get(), CUDA_R_16BF, g.ldb, &g.beta, dc.get(),
                             CUDA_R_16BF, g.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_SUCCESS);
      std::vector<__nv_bfloat16> got;
      ASSERT_EQ(dc.copy_to_host(got), cudaSuccess);
      std::vector<double> want(c0.begin(), c0.end()), mag(c0.size());
      g.run(a, b, want, mag);
      const std::string what =
          std::string("op(A)=") + (ta ? "T" : "N") + " op(B)=" + (tb ? "T" : "N");
      expect_close_bf16(to_float(got), want, mag, g, what);
      // Padding rows of C (ldc > m) are never written.
      const auto gotf = to_float(got);
      for (int j = 0; j < n; ++j) {
        for (int i = m; i < g.ldc; ++i) {
          const size_t at = i + static_cast<size_t>(j) * g.ldc;
          ASSERT_EQ(gotf[at], c0[at]) << what << " wrote padding at (" << i << ", " << j << ")";
        }
      }
    }
  }
}

TEST_F(CublasCudaTest, OutputIsRoundedToBf16AfterFloatAccumulation) {
  // Row · column = 1 + 2^-9 (exact in float32): bf16 keeps 7 fraction bits, so 1.0; and
  // 1 + 3·2^-9 rounds up to 1 + 2^-7. A float32 output keeps both exactly.
  const std::vector<float> a = {1, 1, 1, 1};  // 1×4
  const float e = std::ldexp(1.0f, -9);
  const std::vector<float> b = {1, e, 0, 0, 1, e, e, e};  // 4×2
  DeviceBuffer<__nv_bfloat16> da(to_bf16(a)), db(to_bf16(b)), dc(2);
  DeviceBuffer<float> dc32(2);
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok() && dc32.ok());
  const float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 1, 2, 4, &alpha, da.get(), CUDA_R_16BF,
                         1, db.get(), CUDA_R_16BF, 4, &beta, dc.get(), CUDA_R_16BF, 1,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 1, 2, 4, &alpha, da.get(), CUDA_R_16BF,
                         1, db.get(), CUDA_R_16BF, 4, &beta, dc32.get(), CUDA_R_32F, 1,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  std::vector<__nv_bfloat16> c;
  std::vector<float> c32;
  ASSERT_EQ(dc.copy_to_host(c), cudaSuccess);
  ASSERT_EQ(dc32.copy_to_host(c32), cudaSuccess);
  EXPECT_EQ(__bfloat162float(c[0]), 1.0f);
  EXPECT_EQ(__bfloat162float(c[1]), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(c32[0], 1.0f + e);
  EXPECT_EQ(c32[1], 1.0f + 3 * e);
}

TEST_F(CublasCudaTest, BetaZeroNeverReadsC) {
  const std::vector<float> a = {1, 2}, b = {3, 4};
  const std::vector<float> c0 = {std::nanf("")};
  DeviceBuffer<float> da(a), db(b), dc(c0);
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
  const float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &alpha, da.get(), 1, db.get(),
                        2, &beta, dc.get(), 1),
            CUBLAS_STATUS_SUCCESS);
  std::vector<float> c;
  ASSERT_EQ(dc.copy_to_host(c), cudaSuccess);
  EXPECT_EQ(c[0], 11.0f);
}

TEST_F(CublasCudaTest, StridedAndPointerArrayBatchesMatchTheLoop) {
  const int batch = 3, m = 8, n = 5, k = 12;
  GemmRef g{true, false, m, n, k, k, k, m, 1.0f, 1.0f};
  const size_t sa = g.a_elems() + 7, sb = g.b_elems() + 3, sc = g.c_elems() + 1;  // padded strides
  const auto a = random_bf16_values(sa * batch, 11);
  const auto b = random_bf16_values(sb * batch, 12);
  const auto c0 = random_bf16_values(sc * batch, 13);
  DeviceBuffer<__nv_bfloat16> da(to_bf16(a)), db(to_bf16(b));
  DeviceBuffer<float> dc_strided(c0), dc_array(c0);
  ASSERT_TRUE(da.ok() && db.ok() && dc_strided.ok() && dc_array.ok());

  ASSERT_EQ(cublasGemmStridedBatchedEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &g.alpha,
                                       da.get(), CUDA_R_16BF, g.lda, sa, db.get(), CUDA_R_16BF,
                                       g.ldb, sb, &g.beta, dc_strided.get(), CUDA_R_32F, g.ldc, sc,
                                       batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);

  // The same batch through device-resident pointer arrays, in reverse order to catch mix-ups.
  std::vector<const void*> pa(batch), pb(batch);
  std::vector<void*> pc(batch);
  for (int i = 0; i < batch; ++i) {
    const int r = batch - 1 - i;
    pa[i] = da.get() + r * sa;
    pb[i] = db.get() + r * sb;
    pc[i] = dc_array.get() + r * sc;
  }
  DeviceBuffer<const void*> dpa(pa), dpb(pb);
  DeviceBuffer<void*> dpc(pc);
  ASSERT_TRUE(dpa.ok() && dpb.ok() && dpc.ok());
  ASSERT_EQ(
      cublasGemmBatchedEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &g.alpha, dpa.get(),
                          CUDA_R_16BF, g.lda, dpb.get(), CUDA_R_16BF, g.ldb, &g.beta, dpc.get(),
                          CUDA_R_32F, g.ldc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      CUBLAS_STATUS_SUCCESS);

  std::vector<float> got_strided, got_array;
  ASSERT_EQ(dc_strided.copy_to_host(got_strided), cudaSuccess);
  ASSERT_EQ(dc_array.copy_to_host(got_array), cudaSuccess);
  for (int i = 0; i < batch; ++i) {
    std::vector<float> ai(a.begin() + i * sa, a.begin() + (i + 1) * sa);
    std::vector<float> bi(b.begin() + i * sb, b.begin() + (i + 1) * sb);
    std::vector<double> want(c0.begin() + i * sc, c0.begin() + i * sc + g.c_elems());
    std::vector<double> mag(want.size());
    g.run(ai, bi, want, mag);
    for (size_t e = 0; e < want.size(); ++e) {
      const double tol = mag[e] * 1e-5 + 1e-6;  // float32 output: only accumulation order
      ASSERT_NEAR(got_strided[i * sc + e], want[e], tol) << "strided batch " << i << " elem " << e;
      ASSERT_NEAR(got_array[i * sc + e], want[e], tol) << "pointer batch " << i << " elem " << e;
    }
    // The gap between matrices (stride > size) is untouched.
    ASSERT_EQ(got_strided[i * sc + g.c_elems()], c0[i * sc + g.c_elems()]);
  }
}

TEST_F(CublasCudaTest, StreamAndGraphCaptureRecordTheGemm) {
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(cublasSetStream(handle_, stream), CUBLAS_STATUS_SUCCESS);
  cudaStream_t got_stream = nullptr;
  ASSERT_EQ(cublasGetStream(handle_, &got_stream), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(got_stream, stream);
  ASSERT_EQ(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);

  DeviceBuffer<float> da(std::vector<float>{2}), db(std::vector<float>{3}), dc(1);
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
  const float alpha = 1.0f, beta = 0.0f;
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, da.get(), 1, db.get(),
                        1, &beta, dc.get(), 1),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (const float x : {5.0f, 7.0f}) {  // the replay reads the inputs of its own time
    ASSERT_EQ(da.copy_from_host(&x, 1), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::vector<float> c;
    ASSERT_EQ(dc.copy_to_host(c), cudaSuccess);
    EXPECT_EQ(c[0], 3 * x);
  }
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

TEST_F(CublasCudaTest, InvalidArgumentsAreRejectedAtTheCall) {
  const float alpha = 1.0f, beta = 0.0f;
  float* p = nullptr;
  EXPECT_EQ(
      cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &alpha, p, 3, p, 4, &beta, p, 4),
      CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  EXPECT_EQ(
      cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &alpha, p, 4, p, 4, &beta, p, 4),
      CUBLAS_STATUS_INVALID_VALUE);
}

// ---- cuBLASLt ----

class CublasLtCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    QUILT_SKIP_WITHOUT_CUDA_DEVICE();
    ASSERT_EQ(cublasLtCreate(&lt_), CUBLAS_STATUS_SUCCESS);
  }
  void TearDown() override {
    if (lt_ != nullptr) {
      EXPECT_EQ(cublasLtDestroy(lt_), CUBLAS_STATUS_SUCCESS);
    }
  }
  cublasLtHandle_t lt_ = nullptr;
};

TEST_F(CublasLtCudaTest, Bf16MatmulWithTransposeBiasAndStridedBatch) {
  // The backend's linear layer: y[tokens, out] = x[tokens, in] · W[out, in]ᵀ + bias, as cuBLASLt
  // sees it column-major: D(out × tokens) = Wᵀ-stored(in × out)ᵀ · x(in × tokens) + bias.
  const int batch = 2, out = 24, in = 40, tokens = 6;
  const int64_t stride_w = static_cast<int64_t>(in) * out,
                stride_x = static_cast<int64_t>(in) * tokens;
  const int64_t stride_d = static_cast<int64_t>(out) * tokens;
  const auto w = random_bf16_values(stride_w * batch, 21);
  const auto x = random_bf16_values(stride_x * batch, 22);
  const auto bias = random_bf16_values(out, 23);
  DeviceBuffer<__nv_bfloat16> dw(to_bf16(w)), dx(to_bf16(x)), dbias(to_bf16(bias));
  DeviceBuffer<__nv_bfloat16> dd(static_cast<size_t>(stride_d * batch));
  ASSERT_TRUE(dw.ok() && dx.ok() && dbias.ok() && dd.ok());

  cublasLtMatmulDesc_t desc;
  ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  const cublasOperation_t trans = CUBLAS_OP_T;
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  const void* bias_ptr = dbias.get();
  ASSERT_EQ(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)),
      CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                           sizeof(epilogue)),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr,
                                           sizeof(bias_ptr)),
            CUBLAS_STATUS_SUCCESS);
  cublasLtMatrixLayout_t la, lb, ld;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, in, out, in), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, in, tokens, in), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, out, tokens, out), CUBLAS_STATUS_SUCCESS);
  const int32_t count = batch;
  for (auto [layout, stride] : {std::pair{la, stride_w}, {lb, stride_x}, {ld, stride_d}}) {
    ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                               sizeof(count)),
              CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                               &stride, sizeof(stride)),
              CUBLAS_STATUS_SUCCESS);
  }
  cublasLtMatmulPreference_t pref;
  ASSERT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  const uint64_t max_ws = 0;
  ASSERT_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &max_ws, sizeof(max_ws)),
            CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  ASSERT_EQ(cublasLtMatmulAlgoGetHeuristic(lt_, desc, la, lb, ld, ld, pref, 1, &result, &returned),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(returned, 1);
  const float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasLtMatmul(lt_, desc, &alpha, dw.get(), la, dx.get(), lb, &beta, dd.get(), ld,
                           dd.get(), ld, &result.algo, nullptr, 0, nullptr),
            CUBLAS_STATUS_SUCCESS);
  std::vector<__nv_bfloat16> got;
  ASSERT_EQ(dd.copy_to_host(got), cudaSuccess);
  const auto gotf = to_float(got);
  GemmRef g{true, false, out, tokens, in, in, in, out, 1.0f, 0.0f};
  for (int i = 0; i < batch; ++i) {
    std::vector<float> wi(w.begin() + i * stride_w, w.begin() + (i + 1) * stride_w);
    std::vector<float> xi(x.begin() + i * stride_x, x.begin() + (i + 1) * stride_x);
    std::vector<double> want(stride_d, 0.0), mag(stride_d);
    g.run(wi, xi, want, mag);
    for (int t = 0; t < tokens; ++t) {
      for (int o = 0; o < out; ++o) {
        want[o + t * out] += bias[o];
        mag[o + t * out] += std::fabs(bias[o]);
      }
    }
    std::vector<float> di(gotf.begin() + i * stride_d, gotf.begin() + (i + 1) * stride_d);
    expect_close_bf16(di, want, mag, g, "batch " + std::to_string(i));
  }
  EXPECT_EQ(cublasLtMatmulPreferenceDestroy(pref), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(la), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(lb), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(ld), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescDestroy(desc), CUBLAS_STATUS_SUCCESS);
}

#ifdef QUILT_CUDA_SIM

TEST_F(CublasCudaTest, OutOfBoundsOperandIsAFaultReportNotACrash) {
  DeviceBuffer<float> da(std::vector<float>(4, 1.0f)), db(std::vector<float>(4, 1.0f)), dc(4);
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
  const float alpha = 1.0f, beta = 0.0f;
  // A is 2×4 with lda 2: 8 floats, but only 4 are allocated.
  ASSERT_EQ(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 4, &alpha, da.get(), CUDA_R_32F,
                         2, db.get(), CUDA_R_32F, 4, &beta, dc.get(), CUDA_R_32F, 2,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);  // asynchronous, as on a GPU: the fault surfaces later
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
  const std::vector<std::string> reports = sim::take_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("cublasGemmEx operand A"), std::string::npos) << reports[0];
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // take_reports cleared the sticky error
}

TEST_F(CublasCudaTest, PointerArrayOutsideDeviceMemoryIsAFault) {
  DeviceBuffer<float> da(std::vector<float>(4, 1.0f)), dc(4);
  ASSERT_TRUE(da.ok() && dc.ok());
  const void* host_array[1] = {da.get()};  // a host array: cuBLAS reads it on the device
  DeviceBuffer<const void*> dpa(std::vector<const void*>{da.get()});
  DeviceBuffer<void*> dpc(std::vector<void*>{dc.get()});
  const float alpha = 1.0f, beta = 0.0f;
  ASSERT_EQ(cublasGemmBatchedEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &alpha, dpa.get(),
                                CUDA_R_32F, 2, host_array, CUDA_R_32F, 2, &beta, dpc.get(),
                                CUDA_R_32F, 2, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
  const std::vector<std::string> reports = sim::take_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("Barray"), std::string::npos) << reports[0];
}

TEST_F(CublasLtCudaTest, UnsimulatedEpilogueIsNotSupported) {
  cublasLtMatmulDesc_t desc;
  ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DGELU_BGRAD;
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                           sizeof(epilogue)),
            CUBLAS_STATUS_SUCCESS);
  cublasLtMatrixLayout_t l;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulPreference_t pref;
  ASSERT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t result{};
  int returned = -1;
  EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(lt_, desc, l, l, l, l, pref, 1, &result, &returned),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(returned, 0);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
}

#endif  // QUILT_CUDA_SIM

}  // namespace
}  // namespace quilt::kernels
