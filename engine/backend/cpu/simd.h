// Portable vector code for the CPU backend's non-GEMM ops: loops written so that the compiler
// vectorizes them, or GCC/Clang vector types (Vec<W>) where it would not, compiled once per ISA
// and chosen at run time from CPUID (never from -march flags). A kernel is a template
// `name_impl<W>(args...)` (W float lanes) marked QUILT_SIMD_INLINE; QUILT_SIMD_DISPATCH(name)
// defines `name(args...)` that calls the AVX-512, AVX2 or baseline instantiation.
#pragma once

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace quilt::engine::cpu {

enum class SimdLevel { kBaseline, kAvx2, kAvx512 };

// The best level the CPU has, capped by QUILT_CPU_SIMD=avx2|baseline (tests run every path that
// way on one machine).
inline SimdLevel simd_level() {
  static const SimdLevel level = [] {
    SimdLevel best = SimdLevel::kBaseline;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")) {
      best = SimdLevel::kAvx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      best = SimdLevel::kAvx2;
    }
#endif
    const char* cap = std::getenv("QUILT_CPU_SIMD");
    if (cap != nullptr && std::strcmp(cap, "baseline") == 0) return SimdLevel::kBaseline;
    if (cap != nullptr && std::strcmp(cap, "avx2") == 0 && best == SimdLevel::kAvx512) {
      return SimdLevel::kAvx2;
    }
    return best;
  }();
  return level;
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

// W floats as one vector (GCC/Clang vector extensions): loads and stores through memcpy, so any
// alignment; compiled to zmm/ymm/xmm registers by the function's target.
// (A typedef in a class template: GCC drops vector_size on an alias template.)
template <int W>  // W >= 2
struct VecOf {
  typedef float type __attribute__((vector_size(W * sizeof(float))));
};
template <int W>
using Vec = typename VecOf<W>::type;

template <int W>
QUILT_SIMD_INLINE void load(Vec<W>& v, const float* p) {
  __builtin_memcpy(&v, p, sizeof(v));
}

// The sum of a vector's lanes, halving it (the compiler emits extracts and adds, no stack).
template <int W>
QUILT_SIMD_INLINE float hsum(const Vec<W>& v) {
  if constexpr (W == 2) {
    return v[0] + v[1];
  } else {
    Vec<W / 2> lo, hi;
    __builtin_memcpy(&lo, &v, sizeof(lo));
    __builtin_memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
    return hsum<W / 2>(lo + hi);
  }
}

// Σ a[i]·b[i] in W interleaved partial sums (vectorized; the order differs from a serial sum by
// float rounding only).
template <int W>
QUILT_SIMD_INLINE float dot(const float* a, const float* b, int64_t n) {
  Vec<W> acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    Vec<W> x, y;
    load<W>(x, a + i);
    load<W>(y, b + i);
    acc += x * y;
  }
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return hsum<W>(acc) + tail;
}

// Σ a[i] the same way.
template <int W>
QUILT_SIMD_INLINE float sum_of(const float* a, int64_t n) {
  float acc[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    for (int j = 0; j < W; ++j) acc[j] += a[i + j];
  }
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i];
  for (int w = W / 2; w > 0; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0] + tail;
}

// max a[i] (n >= 1) in W lanes.
template <int W>
QUILT_SIMD_INLINE float max_of(const float* a, int64_t n) {
  float acc[W];
  for (int j = 0; j < W; ++j) acc[j] = a[0];
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    for (int j = 0; j < W; ++j) acc[j] = acc[j] > a[i + j] ? acc[j] : a[i + j];
  }
  for (; i < n; ++i) acc[0] = acc[0] > a[i] ? acc[0] : a[i];
  for (int w = W / 2; w > 0; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] = acc[j] > acc[j + w] ? acc[j] : acc[j + w];
  }
  return acc[0];
}

// Σ a[i]² the same way.
template <int W>
QUILT_SIMD_INLINE float sum_squares(const float* a, int64_t n) {
  return dot<W>(a, a, n);
}

// e^x in float32 to within 2 ulp (Cephes' expf: range reduction by ln 2 and a degree-5
// polynomial), branch-free so that loops over it vectorize; inputs are clamped to [-87, 88] (the
// result is then ~1e-38 or ~1.6e38, as good as 0 and inf for softmax and silu); NaN stays NaN.
QUILT_SIMD_INLINE float exp_approx(float in) {
  // NaN goes through as 0 and comes back at the end: the float-to-int conversion below must
  // never see it (undefined behaviour; UBSan's float-cast-overflow).
  float x = in != in ? 0.f : in;
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
  const float result = p * std::bit_cast<float>(bits);
  return in != in ? in : result;
}

}  // namespace quilt::engine::cpu
