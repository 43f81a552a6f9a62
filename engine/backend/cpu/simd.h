// Portable vector code for the CPU backend's non-GEMM ops: loops written so that the compiler
// vectorizes them (fixed-width lane accumulators, no reductions in a single scalar), compiled once
// per ISA and chosen at run time from CPUID (never from -march flags). A kernel is a template
// `name_impl<W>(args...)` (W float lanes) marked QUILT_SIMD_INLINE; QUILT_SIMD_DISPATCH(name)
// defines `name(args...)` that calls the AVX-512, AVX2 or baseline instantiation.
#pragma once

#include <bit>
#include <cstdint>

namespace quilt::engine::cpu {

enum class SimdLevel { kBaseline, kAvx2, kAvx512 };

inline SimdLevel simd_level() {
#if defined(__x86_64__) || defined(__i386__)
  static const SimdLevel level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")) {
      return SimdLevel::kAvx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
    return SimdLevel::kBaseline;
  }();
  return level;
#else
  return SimdLevel::kBaseline;
#endif
}

#define QUILT_SIMD_INLINE [[gnu::always_inline]] inline

#if defined(__x86_64__) || defined(__i386__)
#define QUILT_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define QUILT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define QUILT_SIMD_DISPATCH(name)                                                           \
  template <typename... A>                                                                  \
  QUILT_TARGET_AVX512 void name##_avx512(A... a) { name##_impl<16>(a...); }              \
  template <typename... A>                                                                  \
  QUILT_TARGET_AVX2 void name##_avx2(A... a) { name##_impl<8>(a...); }                   \
  template <typename... A>                                                                  \
  void name(A... a) {                                                                       \
    switch (::quilt::engine::cpu::simd_level()) {                                           \
      case ::quilt::engine::cpu::SimdLevel::kAvx512: return name##_avx512(a...);            \
      case ::quilt::engine::cpu::SimdLevel::kAvx2: return name##_avx2(a...);                \
      default: return name##_impl<4>(a...);                                                 \
    }                                                                                       \
  }
#else
#define QUILT_SIMD_DISPATCH(name) \
  template <typename... A>        \
  void name(A... a) { name##_impl<4>(a...); }
#endif

// Σ a[i]·b[i] in W interleaved partial sums (vectorizable; the order differs from a serial sum by
// float rounding only).
template <int W>
QUILT_SIMD_INLINE float dot(const float* a, const float* b, int64_t n) {
  float acc[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    for (int j = 0; j < W; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i] * b[i];
  for (int w = W / 2; w > 0; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0] + tail;
}

// Σ a[i]² the same way.
template <int W>
QUILT_SIMD_INLINE float sum_squares(const float* a, int64_t n) {
  return dot<W>(a, a, n);
}

// e^x in float32 to within 2 ulp (Cephes' expf: range reduction by ln 2 and a degree-5
// polynomial), branch-free so that loops over it vectorize; inputs are clamped to [-87, 88] (the
// result is then ~1e-38 or ~1.6e38, as good as 0 and inf for softmax and silu); NaN stays NaN.
QUILT_SIMD_INLINE float exp_approx(float x) {
  x = x < -87.f ? -87.f : x;
  x = x > 88.f ? 88.f : x;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (floorf would be a library call, not vectorized).
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

}  // namespace quilt::engine::cpu
