// Helpers for tests that run the same Backend op on two backends: bf16-exact random inputs loaded
// through the seam (load_weight), downloads, and the relative error ‖a − b‖ / ‖b‖.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/backend/backend.h"

namespace quilt::testing {

// Round-to-nearest-even to bf16, widened: values every backend holds exactly.
inline float bf16_round(float v) {
  uint32_t bits = std::bit_cast<uint32_t>(v);
  bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
  return std::bit_cast<float>(bits);
}

// Normal values of spread `sigma`, bf16-exact and never zero (a zero hides a missed write), and
// never below fp16's smallest normal 2^-14, so that fp16 holds them exactly too.
inline std::vector<float> random_values(size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> d(0.f, sigma);
  std::vector<float> v(n);
  for (float& x : v) {
    do {
      x = bf16_round(d(rng));
    } while (std::fabs(x) < 0x1p-14f);
  }
  return v;
}

// A float32 view of `values` shaped [rows, cols], for Backend::load_weight.
inline engine::TensorView float_view(const std::vector<float>& values, int64_t rows, int64_t cols) {
  engine::TensorView t;
  t.name = "test";
  t.dtype = engine::DType::kF32;
  t.shape = {rows, cols};
  t.data = reinterpret_cast<const std::byte*>(values.data());
  return t;
}

inline std::vector<float> download(engine::Backend& b, const engine::Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.num_elements()));
  const Status s = b.download(t, out);
  if (!s.ok()) out.assign(out.size(), NAN);
  return out;
}

// ‖got − ref‖ / ‖ref‖ over the first ref.size() elements (NaN if any is not finite).
inline double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return NAN;
    diff += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace quilt::testing
