// The CPU GEMM (engine/backend/cpu/gemm.h) on SmolLM2-135M's projection shapes, against
// cblas_sgemm as Debian ships it (OpenBLAS) and against memcpy bandwidth: GFLOP/s, and GB/s of
// the bytes a call must read (weights + x) and write (out). Decode shapes (M = 1, 16, 64) are
// bound by reading the weights; M = 2048 (prefill) by arithmetic.
//   cpu_gemm_bench [--threads N] [--quick]
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/gemm.h"
#include "engine/backend/cpu/quantize.h"
#include "engine/backend/cpu/thread_pool.h"

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace {

using namespace quilt::engine::cpu;
using Clock = std::chrono::steady_clock;

// Seconds per call: the best of a few timed batches, each at least ~0.1 s (one call at least).
template <typename Fn>
double time_call(Fn&& fn, double budget_s) {
  fn();  // warm
  const auto t0 = Clock::now();
  fn();
  const double one = std::chrono::duration<double>(Clock::now() - t0).count();
  const int reps = std::max(1, static_cast<int>(0.1 / std::max(one, 1e-9)));
  double best = one;
  for (int round = 0; round < 3 && (round + 1) * reps * one < budget_s; ++round) {
    const auto s = Clock::now();
    for (int r = 0; r < reps; ++r) fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - s).count() / reps);
  }
  return best;
}

struct Shape {
  const char* name;
  int64_t N, K;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  }
  if (threads > 0) set_num_threads(threads);
  const std::string isa = gemm_isa();  // picks, checks and logs the kernels
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(num_threads());
  const double budget = quick ? 0.3 : 1.0;

  // memcpy bandwidth: 256 MiB copied, bytes read + written per second.
  const size_t big = size_t{256} << 20;
  std::vector<char> a(big, 1), b(big, 2);
  const double mt = time_call([&] { std::memcpy(b.data(), a.data(), big); }, 1.0);
  const double memcpy_gbs = 2.0 * big / mt / 1e9;
  // The pool's cost for one parallel region (what a GEMM split across threads pays on top).
  const double region_s = time_call(
      [&] { pool().parallel_for(num_threads(), 1, [](int64_t, int64_t) {}); }, 0.5);
  std::printf("# cpu_gemm_bench: kernels %s, %d threads; memcpy %.1f GB/s (read + write); "
              "an empty parallel_for %.1f us\n\n",
              isa.c_str(), num_threads(), memcpy_gbs, region_s * 1e6);

  const Shape shapes[] = {{"qkv 576->960", 960, 576},
                          {"o 576->576", 576, 576},
                          {"gate_up 576->3072", 3072, 576},
                          {"down 1536->576", 576, 1536},
                          {"lm_head 576->49152", 49152, 576}};
  const int64_t ms[] = {1, 16, 64, 2048};
  std::printf("| shape | M | ours f32 GFLOP/s (GB/s) | ours bf16 | ours int8 | cblas_sgemm f32 |"
              " bf16 / cblas |\n|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (const Shape& s : shapes) {
    const int64_t N = s.N, K = s.K;
    std::vector<float> wf(N * K), scales(N);
    for (float& v : wf) v = d(rng);
    std::vector<uint16_t> wb(N * K);
    for (int64_t i = 0; i < N * K; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &wf[i], 4);
      wb[i] = static_cast<uint16_t>(bits >> 16);
    }
    std::vector<int8_t> wq(N * K);
    quantize_rows_int8(wf.data(), N, K, wq.data(), scales.data());
    for (int64_t M : ms) {
      if (quick && M == 2048 && N > 4000) continue;
      std::vector<float> x(M * K), out(M * N);
      for (float& v : x) v = d(rng);
      const double flops = 2.0 * M * N * K;
      const double io = 4.0 * (M * K + M * N);  // x read, out written
      auto ours = [&](GemmWeights w, double wbytes) {
        const double t = time_call(
            [&] { gemm(M, N, K, x.data(), K, w, out.data(), N, 0.f); }, budget);
        return std::make_pair(flops / t / 1e9, (wbytes + io) / t / 1e9);
      };
      const auto f = ours({GemmWeightType::kF32, wf.data(), K, nullptr}, 4.0 * N * K);
      const auto h = ours({GemmWeightType::kBF16, wb.data(), K, nullptr}, 2.0 * N * K);
      const auto q = ours({GemmWeightType::kI8, wq.data(), K, scales.data()}, 1.0 * N * K + 4 * N);
      const double tb = time_call(
          [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x.data(), K,
                        wf.data(), K, 0.f, out.data(), N);
          },
          budget);
      const double blas = flops / tb / 1e9;
      std::printf("| %s | %lld | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) | %.1f (%.1f) | %.2fx |\n",
                  s.name, static_cast<long long>(M), f.first, f.second, h.first, h.second,
                  q.first, q.second, blas, (4.0 * N * K + io) / tb / 1e9, h.first / blas);
      std::fflush(stdout);
    }
  }
  return 0;
}
