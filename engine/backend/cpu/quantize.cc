#include "engine/backend/cpu/quantize.h"

#include <algorithm>
#include <cmath>

namespace quilt::engine::cpu {

void quantize_rows_int8(const float* src, int64_t rows, int64_t cols, int8_t* q, float* scales) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = src + r * cols;
    float amax = 0.f;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::abs(row[c]));
    const float scale = amax / 127.f;
    scales[r] = scale;
    const float inv = scale > 0.f ? 1.f / scale : 0.f;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = std::nearbyint(row[c] * inv);
      q[r * cols + c] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
    }
  }
}

}  // namespace quilt::engine::cpu
