// Inside the CPU GEMM: one kernel family per ISA (gemm_avx512.cc, gemm_avx2.cc, gemm_scalar.cc),
// each computing a block single-threaded; gemm.cc picks one at run time, cuts the problem into
// blocks and threads them. Tests reach every family the machine runs through gemm_impl().
#pragma once

#include <cstdint>

#include "engine/backend/cpu/gemm.h"

namespace quilt::engine::cpu::detail {

// out[M,N] = x[M,K] · w[N,K]ᵀ (+ out when beta is 1), one thread. With scales (int8 weights, or
// their widened copy) out[m,n] = scales[n] · Σ_k x[m,k] q[n,k].
struct GemmBlock {
  int64_t M = 0, N = 0, K = 0;
  const float* x = nullptr;
  int64_t ldx = 0;
  GemmWeightType wtype = GemmWeightType::kF32;
  const void* w = nullptr;
  int64_t ldw = 0;
  const float* scales = nullptr;
  float* out = nullptr;
  int64_t ldo = 0;
  float beta = 0.f;
};

struct GemmImpl {
  const char* name;
  // The dot-product form: w read as stored, good for few x rows (decode).
  void (*block)(const GemmBlock& b);
  // The outer-product form for many x rows: w packed by `pack` into float panels (int8 as its
  // integer values; the scales stay in GemmBlock::scales), packed_size floats for `rows` rows.
  void (*packed_block)(const GemmBlock& b);
  void (*pack)(GemmWeightType type, const void* w, int64_t ldw, int64_t rows, int64_t K,
               float* dst);
  int64_t (*packed_size)(int64_t rows, int64_t K);
};

extern const GemmImpl kScalarImpl;
#if defined(__x86_64__)
extern const GemmImpl kAvx2Impl;
extern const GemmImpl kAvx512Impl;
#endif

// The family `name` ("scalar", "avx2", "avx512") if this CPU runs it, else nullptr.
const GemmImpl* gemm_impl(const char* name);
// The driver with a given family: blocks over M and N, widening bf16/int8 weight blocks to f32
// when enough rows reuse them, threaded on cpu::pool() or not.
void gemm_with(const GemmImpl& impl, int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx,
               const GemmWeights& w, float* out, int64_t ldo, float beta, bool threaded);
// True when `impl` agrees with the scalar reference on small problems of every weight type.
bool gemm_self_check(const GemmImpl& impl);

}  // namespace quilt::engine::cpu::detail
