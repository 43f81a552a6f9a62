// The AVX2 + FMA GEMM kernels: 8 floats a vector, 2x4 tiles (8 accumulators of 16 registers).
// Compiled for AVX2 by the pragma below whatever the build's -march; gemm.cc only calls it where
// CPUID says the CPU has AVX2 and FMA.
#include <cstdint>
#include <cstring>

#include "engine/backend/cpu/gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
// The region's functions are compiled for AVX2: GCC by its target pragma, clang (which ignores
// that pragma; the sanitizer and fuzz builds use clang) by the same target as an attribute on
// every function declared in the region.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// GCC 12 flags the intrinsics' own _mm*_undefined_* placeholders as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define QUILT_GEMM_ISA avx2
#include "engine/backend/cpu/gemm_kernel.h"

namespace quilt::engine::cpu::detail {
namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kMR = 2;
  static constexpr int kNR = 4;
  static constexpr int kPackMR = 6;  // rows of x per packed tile: 2*kPackMR accumulators
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static V load(const int8_t* p) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
  }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace

const GemmImpl kAvx2Impl = {"avx2", avx2::block<Avx2>, avx2::packed_block<Avx2>,
                                avx2::pack<Avx2>, avx2::packed_size<Avx2>};

}  // namespace quilt::engine::cpu::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
#endif  // __x86_64__
