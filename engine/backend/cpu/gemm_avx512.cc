// The AVX-512 GEMM kernels (F, BW, VL): 16 floats a vector, 4x4 tiles (16 accumulators of 32
// registers). bf16 weights widen with a zero-extend and shift (exact), int8 with a sign-extend and
// convert. Compiled for AVX-512 by the pragma below whatever the build's -march; gemm.cc only
// calls it where CPUID says the CPU has these units.
#include <cstdint>
#include <cstring>

#include "engine/backend/cpu/gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
// The region's functions are compiled for AVX-512: GCC by its target pragma, clang (which ignores
// that pragma; the sanitizer and fuzz builds use clang) by the same target as an attribute on
// every function declared in the region.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
// GCC 12 flags the intrinsics' own _mm*_undefined_* placeholders as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define QUILT_GEMM_ISA avx512
#include "engine/backend/cpu/gemm_kernel.h"

namespace quilt::engine::cpu::detail {
namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kMR = 4;
  static constexpr int kNR = 4;
  static constexpr int kPackMR = 12;  // rows of x per packed tile: 2*kPackMR accumulators
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static V load(const int8_t* p) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
  }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

const GemmImpl kAvx512Impl = {"avx512", avx512::block<Avx512>, avx512::packed_block<Avx512>,
                                avx512::pack<Avx512>, avx512::packed_size<Avx512>};

}  // namespace quilt::engine::cpu::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
#endif  // __x86_64__
