// The CPU backend's GEMMs: out[M,N] = x[M,K] · w[N,K]ᵀ (+ beta · out), activations and
// accumulation in float32, weights stored as float32, bf16 (widened exactly to f32 in the kernel) or
// int8 with one float scale per output row (dequantized in the kernel). Kernels are chosen at run
// time from CPUID (AVX-512, AVX2+FMA, portable scalar), checked against the scalar reference on a
// small problem at first use, and threaded over N (and M when N is small) on cpu::pool().
#pragma once

#include <cstdint>
#include <string>

namespace quilt::engine::cpu {

enum class GemmWeightType { kF32, kBF16, kI8 };

// A weight matrix w[N,K] (row n = output channel n), row-major with leading dimension ld >= K.
struct GemmWeights {
  GemmWeightType type = GemmWeightType::kF32;
  const void* data = nullptr;      // float*, uint16_t* (bf16 bits) or int8_t*
  int64_t ld = 0;                  // elements between rows
  const float* scales = nullptr;   // kI8 only: one scale per row n (w[n,k] = scales[n] * q[n,k])
};

// beta is 0 (out is overwritten; its old contents are never read, NaNs included) or 1 (out += x·wᵀ).
// Threaded on cpu::pool(); must not be called from inside a pool().parallel_for body (use the
// _serial variants there).
void gemm(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const GemmWeights& w,
          float* out, int64_t ldo, float beta);

// f32 weights; convenience for callers (e.g. grouped LoRA) that hold float32 matrices.
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w,
              int64_t ldw, float* out, int64_t ldo, float beta);

// The same, single-threaded on the calling thread: for use inside a parallel_for body.
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
                 const GemmWeights& w, float* out, int64_t ldo, float beta);
void gemm_f32_serial(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w,
                     int64_t ldw, float* out, int64_t ldo, float beta);

// The kernel family gemm() uses: "avx512", "avx2" or "scalar" (after the start-up check).
std::string gemm_isa();

}  // namespace quilt::engine::cpu
