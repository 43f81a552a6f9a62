// --quantize int8 for the CPU backend: symmetric int8 per output row (w[n,k] ≈ scale[n] · q[n,k],
// scale[n] = max_k |w[n,k]| / 127, q rounded to nearest). The GEMM multiplies in float32 with the
// scale applied to each row's sum, so activations and accumulation stay float32.
#pragma once

#include <cstdint>

namespace quilt::engine::cpu {

// src [rows, cols] float32 → q [rows, cols] and scales [rows]. A row of zeros gets scale 0.
void quantize_rows_int8(const float* src, int64_t rows, int64_t cols, int8_t* q, float* scales);

}  // namespace quilt::engine::cpu
