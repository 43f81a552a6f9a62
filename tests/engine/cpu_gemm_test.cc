// The CPU GEMM (engine/backend/cpu/gemm.h): every kernel family this machine runs (scalar, avx2,
// avx512) against a double-precision reference, for f32, bf16 and int8 weights, beta 0 and 1,
// odd shapes (every tile edge and K tail), the decode rows 1..64 (dot-product form) and M from
// 128 up (packed outer-product form), strided operands, threaded and not.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/gemm.h"
#include "engine/backend/cpu/gemm_internal.h"
#include "engine/backend/cpu/thread_pool.h"

namespace quilt::engine::cpu {
namespace {

using detail::GemmImpl;

struct Problem {
  int64_t M, N, K;
  int64_t ldx, ldw, ldo;  // strides >= the row length
  GemmWeightType type;
  std::vector<float> x, out;
  std::vector<float> wf;
  std::vector<uint16_t> wb;
  std::vector<int8_t> wq;
  std::vector<float> scales;

  Problem(int64_t m, int64_t n, int64_t k, GemmWeightType t, int64_t pad, uint32_t seed)
      : M(m), N(n), K(k), ldx(k + pad), ldw(k + pad), ldo(n + pad), type(t) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    x.resize(M * ldx);
    out.resize(M * ldo);
    for (float& v : x) v = d(rng);
    for (float& v : out) v = d(rng);
    wf.resize(N * ldw);
    wb.resize(N * ldw);
    wq.resize(N * ldw);
    scales.resize(N);
    for (int64_t i = 0; i < N * ldw; ++i) {
      wf[i] = d(rng);
      uint32_t bits;
      std::memcpy(&bits, &wf[i], 4);
      wb[i] = static_cast<uint16_t>(bits >> 16);
      wq[i] = static_cast<int8_t>(std::lround(d(rng) * 127));
    }
    for (float& s : scales) s = 0.001f + 0.02f * std::abs(d(rng));
  }

  GemmWeights weights() const {
    switch (type) {
      case GemmWeightType::kF32: return {type, wf.data(), ldw, nullptr};
      case GemmWeightType::kBF16: return {type, wb.data(), ldw, nullptr};
      case GemmWeightType::kI8: return {type, wq.data(), ldw, scales.data()};
    }
    return {};
  }
  double w(int64_t n, int64_t k) const {
    const int64_t i = n * ldw + k;
    if (type == GemmWeightType::kF32) return wf[i];
    if (type == GemmWeightType::kI8) return static_cast<double>(wq[i]) * scales[n];
    const uint32_t bits = static_cast<uint32_t>(wb[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  // Checks `got` (the out buffer after the GEMM) against the double reference; padding untouched.
  void check(const std::vector<float>& got, float beta, const std::string& what) const {
    int bad = 0;
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t o = 0; o < ldo; ++o) {
        const int64_t i = m * ldo + o;
        if (o >= N) {  // padding columns are never written
          if (got[i] != out[i] && bad++ < 5) ADD_FAILURE() << what << " wrote padding at " << i;
          continue;
        }
        double ref = beta != 0.f ? out[i] : 0.0, mag = std::abs(ref);
        for (int64_t k = 0; k < K; ++k) {
          ref += static_cast<double>(x[m * ldx + k]) * w(o, k);
          mag += std::abs(static_cast<double>(x[m * ldx + k]) * w(o, k));
        }
        if (!(std::abs(got[i] - ref) <= 1e-5 * (mag + 1e-3)) && bad++ < 5) {
          ADD_FAILURE() << what << " m=" << m << " n=" << o << ": " << got[i] << " vs " << ref;
        }
      }
    }
  }
};

std::vector<const GemmImpl*> impls() {
  std::vector<const GemmImpl*> out;
  for (const char* name : {"scalar", "avx2", "avx512"}) {
    if (const GemmImpl* i = detail::gemm_impl(name)) out.push_back(i);
  }
  return out;
}

const char* type_name(GemmWeightType t) {
  return t == GemmWeightType::kF32 ? "f32" : t == GemmWeightType::kBF16 ? "bf16" : "int8";
}

void run_case(const GemmImpl& impl, int64_t M, int64_t N, int64_t K, GemmWeightType type,
              float beta, int64_t pad, bool threaded) {
  Problem p(M, N, K, type, pad, static_cast<uint32_t>(M * 7919 + N * 31 + K));
  std::vector<float> got = p.out;
  detail::gemm_with(impl, M, N, K, p.x.data(), p.ldx, p.weights(), got.data(), p.ldo, beta,
                    threaded);
  p.check(got, beta,
          std::string(impl.name) + " " + type_name(type) + " M=" + std::to_string(M) + " N=" +
              std::to_string(N) + " K=" + std::to_string(K) + " beta=" + std::to_string(beta));
}

TEST(CpuGemmTest, EveryFamilyMatchesTheReferenceOnDecodeShapes) {
  set_num_threads(2);
  for (const GemmImpl* impl : impls()) {
    for (GemmWeightType t : {GemmWeightType::kF32, GemmWeightType::kBF16, GemmWeightType::kI8}) {
      for (int64_t M = 1; M <= 64; M += (M < 8 ? 1 : 7)) {
        for (float beta : {0.f, 1.f}) {
          run_case(*impl, M, 37, 83, t, beta, 0, true);
        }
      }
    }
  }
}

TEST(CpuGemmTest, OddShapesStridesAndKTails) {
  for (const GemmImpl* impl : impls()) {
    for (GemmWeightType t : {GemmWeightType::kF32, GemmWeightType::kBF16, GemmWeightType::kI8}) {
      for (int64_t K : {1, 7, 8, 15, 16, 17, 33, 64, 576}) {
        for (int64_t N : {1, 2, 3, 5, 17}) {
          run_case(*impl, 3, N, K, t, 1.f, 5, false);
          run_case(*impl, 21, N, K, t, 0.f, 3, false);
          run_case(*impl, 131, N, K, t, 1.f, 3, false);  // >= 128 rows: the packed path
        }
      }
    }
  }
}

TEST(CpuGemmTest, LargeMAndNAcrossBlocksThreaded) {
  set_num_threads(2);
  for (const GemmImpl* impl : impls()) {
    if (std::string(impl->name) == "scalar") continue;  // slow; covered above
    for (GemmWeightType t : {GemmWeightType::kF32, GemmWeightType::kBF16, GemmWeightType::kI8}) {
      run_case(*impl, 300, 530, 96, t, 0.f, 0, true);
      run_case(*impl, 130, 1100, 40, t, 1.f, 2, true);
      run_case(*impl, 100, 530, 96, t, 1.f, 1, true);  // dot-product form over two row blocks
    }
  }
}

TEST(CpuGemmTest, BetaZeroNeverReadsTheOutput) {
  for (const GemmImpl* impl : impls()) {
    for (int64_t M : {1, 20}) {
      Problem p(M, 9, 40, GemmWeightType::kBF16, 0, 7);
      std::vector<float> got(p.out.size(), std::nanf(""));
      detail::gemm_with(*impl, M, 9, 40, p.x.data(), p.ldx, p.weights(), got.data(), p.ldo, 0.f,
                        false);
      for (float v : got) EXPECT_TRUE(std::isfinite(v)) << impl->name;
    }
  }
}

// Packed weight blocks are cached per thread within a call; new weights at the same address (a
// buffer refilled between calls) must be packed again.
TEST(CpuGemmTest, ANewCallNeverReusesAnotherCallsPackedWeights) {
  for (const GemmImpl* impl : impls()) {
    for (GemmWeightType t : {GemmWeightType::kF32, GemmWeightType::kBF16, GemmWeightType::kI8}) {
      Problem p(140, 24, 64, t, 0, 11);
      std::vector<float> got = p.out;
      detail::gemm_with(*impl, p.M, p.N, p.K, p.x.data(), p.ldx, p.weights(), got.data(), p.ldo,
                        0.f, false);
      p.check(got, 0.f, std::string(impl->name) + " first call");
      for (auto& v : p.wf) v = -v;  // new values, same buffers
      for (auto& v : p.wb) v ^= 0x0080;
      for (auto& v : p.wq) v = static_cast<int8_t>(-v);
      got = p.out;
      detail::gemm_with(*impl, p.M, p.N, p.K, p.x.data(), p.ldx, p.weights(), got.data(), p.ldo,
                        0.f, false);
      p.check(got, 0.f, std::string(impl->name) + " second call");
    }
  }
}

TEST(CpuGemmTest, EveryVectorFamilyPassesTheStartupCheck) {
  for (const GemmImpl* impl : impls()) EXPECT_TRUE(detail::gemm_self_check(*impl)) << impl->name;
}

TEST(CpuGemmTest, PublicEntryPointsUseTheChosenFamily) {
  const std::string isa = gemm_isa();
  EXPECT_NE(detail::gemm_impl(isa.c_str()), nullptr) << isa;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    EXPECT_EQ(isa, "avx512");
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_EQ(isa, "avx2");
  }
#endif
  // gemm_f32 and its serial twin agree with each other exactly (same kernels, same blocking).
  Problem p(5, 70, 130, GemmWeightType::kF32, 0, 3);
  std::vector<float> a = p.out, b = p.out;
  gemm_f32(5, 70, 130, p.x.data(), p.ldx, p.wf.data(), p.ldw, a.data(), p.ldo, 1.f);
  gemm_f32_serial(5, 70, 130, p.x.data(), p.ldx, p.wf.data(), p.ldw, b.data(), p.ldo, 1.f);
  EXPECT_EQ(a, b);
  p.check(a, 1.f, "gemm_f32");
}

}  // namespace
}  // namespace quilt::engine::cpu
