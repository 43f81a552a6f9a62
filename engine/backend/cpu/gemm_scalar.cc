// The portable GEMM kernels: the shared tile code over plain floats (one accumulator per output,
// summed in k order). Runs on any CPU; the fallback when no vector family passes its check.
#include <cstdint>
#include <cstring>

#include "engine/backend/cpu/gemm_internal.h"

#define QUILT_GEMM_ISA scalar
#include "engine/backend/cpu/gemm_kernel.h"

namespace quilt::engine::cpu::detail {
namespace {

struct Scalar {
  using V = float;
  static constexpr int kWidth = 1;
  static constexpr int kMR = 2;
  static constexpr int kNR = 4;
  static constexpr int kPackMR = 4;  // rows of x per packed tile: 2*kPackMR accumulators
  static V zero() { return 0.f; }
  static V load(const float* p) { return *p; }
  static V load(const uint16_t* p) { return scalar::widen1(*p); }
  static V load(const int8_t* p) { return scalar::widen1(*p); }
  static void store(float* p, V v) { *p = v; }
  static V broadcast(const float* p) { return *p; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static float hsum(V v) { return v; }
};

}  // namespace

const GemmImpl kScalarImpl = {"scalar", scalar::block<Scalar>, scalar::packed_block<Scalar>,
                                scalar::pack<Scalar>, scalar::packed_size<Scalar>};

}  // namespace quilt::engine::cpu::detail
