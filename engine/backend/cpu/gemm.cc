// The GEMM driver: picks a kernel family from CPUID once (checked against a plain reference on
// small problems, logged), cuts out[M,N] into blocks of x rows and weight rows, and runs the
// blocks on the process's pool. Few x rows (decode): the dot-product kernels read the weights as
// stored, each weight byte once. Many (prefill): each weight block is packed once into float
// panels for the outer-product kernels, which reuse it across every x row.
#include "engine/backend/cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "common/log.h"
#include "engine/backend/cpu/gemm_internal.h"
#include "engine/backend/cpu/thread_pool.h"

// OpenBLAS's thread count, where the process links OpenBLAS (weak: absent elsewhere).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace quilt::engine::cpu {
namespace detail {
namespace {

constexpr int64_t kRowsPerBlock = 64;     // x rows per block: 64 x K floats stay in L2
// Pack weight blocks when the call has this many x rows: packing costs about as much as 64 rows
// of compute, so below this the dot-product kernels win (measured with bench/cpu_gemm_bench).
constexpr int64_t kPackMinRows = 128;
constexpr int64_t kWeightBlockBytes = 256 << 10;  // a packed weight block, in L2

bool cpu_has(const char* feature) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (std::strcmp(feature, "avx512") == 0) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  }
  if (std::strcmp(feature, "avx2") == 0) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
#endif
  (void)feature;
  return false;
}

// Rows of weights per block: a multiple of 4, about kWeightBlockBytes as float32, and small enough
// that every thread gets a few blocks when there is only one block of x rows (decode).
int64_t weight_rows_per_block(int64_t M, int64_t N, int64_t K, int threads) {
  int64_t nb = std::clamp<int64_t>(kWeightBlockBytes / (std::max<int64_t>(K, 1) * 4), 16, 512);
  if (M <= kRowsPerBlock && threads > 1) {
    nb = std::min(nb, std::max<int64_t>(16, (N + 4 * threads - 1) / (4 * threads)));
  }
  return (nb + 3) / 4 * 4;
}

// A thread's packed weight block, valid within one GEMM call only (a later call may see other
// weights at the same address).
struct Scratch {
  std::vector<float> packed;
  uint64_t call = 0;             // the gemm_with call that filled it
  const void* source = nullptr;  // the weight rows `packed` holds
  int64_t rows = 0;
};

std::atomic<uint64_t> g_calls{0};

void run_block(const GemmImpl& impl, uint64_t call, bool packed, int64_t m0, int64_t m1, int64_t n0,
               int64_t n1, int64_t K, const float* x, int64_t ldx, const GemmWeights& w, float* out, int64_t ldo,
               float beta) {
  GemmBlock b;
  b.M = m1 - m0;
  b.N = n1 - n0;
  b.K = K;
  b.x = x + m0 * ldx;
  b.ldx = ldx;
  b.scales = w.scales != nullptr ? w.scales + n0 : nullptr;
  b.out = out + m0 * ldo + n0;
  b.ldo = ldo;
  b.beta = beta;
  const int64_t esize = w.type == GemmWeightType::kF32 ? 4 : w.type == GemmWeightType::kBF16 ? 2 : 1;
  const void* rows = static_cast<const char*>(w.data) + n0 * w.ld * esize;
  if (packed) {
    // Pack once, reuse for every x row (a thread's consecutive blocks share their weight rows).
    thread_local Scratch s;
    if (s.call != call || s.source != rows || s.rows != b.N) {
      s.packed.resize(static_cast<size_t>(impl.packed_size(b.N, K)));
      impl.pack(w.type, rows, w.ld, b.N, K, s.packed.data());
      s.source = rows;
      s.rows = b.N;
      s.call = call;
    }
    b.wtype = GemmWeightType::kF32;
    b.w = s.packed.data();
    b.ldw = K;
    impl.packed_block(b);
  } else {
    b.wtype = w.type;
    b.w = rows;
    b.ldw = w.ld;
    impl.block(b);
  }
}

// A plain reference in double, for the start-up check.
void reference(int64_t M, int64_t N, int64_t K, const float* x, const GemmWeights& w,
               const float* out_in, float beta, std::vector<double>& out) {
  out.assign(static_cast<size_t>(M * N), 0.0);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        double wv;
        if (w.type == GemmWeightType::kF32) {
          wv = static_cast<const float*>(w.data)[n * w.ld + k];
        } else if (w.type == GemmWeightType::kBF16) {
          const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(w.data)[n * w.ld + k]) << 16;
          float f;
          std::memcpy(&f, &bits, 4);
          wv = f;
        } else {
          wv = static_cast<double>(static_cast<const int8_t*>(w.data)[n * w.ld + k]) * w.scales[n];
        }
        s += static_cast<double>(x[m * K + k]) * wv;
      }
      out[m * N + n] = s + (beta != 0.f ? out_in[m * N + n] : 0.0);
    }
  }
}

}  // namespace

const GemmImpl* gemm_impl(const char* name) {
  if (std::strcmp(name, "scalar") == 0) return &kScalarImpl;
#if defined(__x86_64__)
  if (std::strcmp(name, "avx2") == 0 && cpu_has("avx2")) return &kAvx2Impl;
  if (std::strcmp(name, "avx512") == 0 && cpu_has("avx512")) return &kAvx512Impl;
#endif
  return nullptr;
}

void gemm_with(const GemmImpl& impl, int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
               const GemmWeights& w, float* out, int64_t ldo, float beta, bool threaded) {
  if (M <= 0 || N <= 0) return;
  const int threads = threaded ? num_threads() : 1;
  // Packed: 64 rows a block (x in L2, the packed panel streamed). Dot-product: as many rows as
  // keep x in L1 (~32 KiB) beside the weight tile, the weight block being re-read from L2.
  const bool packed = M >= kPackMinRows;
  const int64_t mb = packed ? kRowsPerBlock
                            : std::clamp<int64_t>((32 << 10) / (std::max<int64_t>(K, 1) * 4) / 4 * 4,
                                                  4, kRowsPerBlock);
  const int64_t nb = weight_rows_per_block(M, N, K, threads);
  const int64_t m_blocks = (M + mb - 1) / mb;
  const int64_t n_blocks = (N + nb - 1) / nb;
  const uint64_t call = g_calls.fetch_add(1, std::memory_order_relaxed) + 1;
  // Item i: weight block i / m_blocks, x block i % m_blocks, so that a thread's consecutive items
  // share a weight block (packed once).
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t m0 = (i % m_blocks) * mb, n0 = (i / m_blocks) * nb;
      run_block(impl, call, packed, m0, std::min(M, m0 + mb), n0, std::min(N, n0 + nb),
                K, x, ldx, w, out, ldo, beta);
    }
  };
  const int64_t items = m_blocks * n_blocks;
  if (threads > 1 && items > 1) {
    pool().parallel_for(items, 1, body);
  } else {
    body(0, items);
  }
}

bool gemm_self_check(const GemmImpl& impl) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  // Odd sizes: every tile edge and the K tail; 130 rows take the packed path.
  for (int64_t M : {1, 3, 130}) {
    const int64_t N = 11, K = 53;
    std::vector<float> x(M * K), wf(N * K), scales(N), out0(M * N);
    std::vector<uint16_t> wb(N * K);
    std::vector<int8_t> wq(N * K);
    for (float& v : x) v = d(rng);
    for (float& v : out0) v = d(rng);
    for (int64_t i = 0; i < N * K; ++i) {
      wf[i] = d(rng);
      uint32_t bits;
      std::memcpy(&bits, &wf[i], 4);
      wb[i] = static_cast<uint16_t>(bits >> 16);
      wq[i] = static_cast<int8_t>(static_cast<int>(d(rng) * 127));
    }
    for (float& s : scales) s = 0.01f + std::abs(d(rng));
    const GemmWeights ws[] = {{GemmWeightType::kF32, wf.data(), K, nullptr},
                              {GemmWeightType::kBF16, wb.data(), K, nullptr},
                              {GemmWeightType::kI8, wq.data(), K, scales.data()}};
    std::vector<double> ref;
    for (const GemmWeights& w : ws) {
      for (float beta : {0.f, 1.f}) {
        std::vector<float> out = out0;
        gemm_with(impl, M, N, K, x.data(), K, w, out.data(), N, beta, false);
        reference(M, N, K, x.data(), w, out0.data(), beta, ref);
        for (int64_t i = 0; i < M * N; ++i) {
          if (!(std::abs(out[i] - ref[i]) <= 1e-4 * (1.0 + std::abs(ref[i])))) return false;
        }
      }
    }
  }
  return true;
}

}  // namespace detail

namespace {

const detail::GemmImpl& chosen() {
  static const detail::GemmImpl* impl = [] {
    const detail::GemmImpl* pick = &detail::kScalarImpl;
    for (const char* name : {"avx512", "avx2"}) {
      const detail::GemmImpl* c = detail::gemm_impl(name);
      if (c == nullptr) continue;
      if (detail::gemm_self_check(*c)) {
        pick = c;
        break;
      }
      log::warn("cpu: gemm kernels disagree with the reference on this CPU; not using them",
                {{"kernels", name}});
    }
    // GEMMs run on our pool; a BLAS still called elsewhere must not start threads of its own.
    if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
    log::info(std::string("cpu: gemm ") + pick->name + " (f32/bf16/int8 weights), " +
                  std::to_string(num_threads()) + " threads",
              {{"kernels", pick->name}, {"threads", num_threads()}});
    return pick;
  }();
  return *impl;
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const GemmWeights& w,
          float* out, int64_t ldo, float beta) {
  detail::gemm_with(chosen(), M, N, K, x, ldx, w, out, ldo, beta, true);
}

void gemm_serial(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
                 const GemmWeights& w, float* out, int64_t ldo, float beta) {
  detail::gemm_with(chosen(), M, N, K, x, ldx, w, out, ldo, beta, false);
}

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w,
              int64_t ldw, float* out, int64_t ldo, float beta) {
  gemm(M, N, K, x, ldx, GemmWeights{GemmWeightType::kF32, w, ldw, nullptr}, out, ldo, beta);
}

void gemm_f32_serial(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w,
                     int64_t ldw, float* out, int64_t ldo, float beta) {
  gemm_serial(M, N, K, x, ldx, GemmWeights{GemmWeightType::kF32, w, ldw, nullptr}, out, ldo,
              beta);
}

std::string gemm_isa() { return chosen().name; }

}  // namespace quilt::engine::cpu
