// Grid shape of the flat elementwise kernels: grid-stride loops over a capped number of blocks.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/common/device_math.cuh"

namespace quilt::kernels::detail {

inline constexpr int kElementwiseThreads = 256;
inline constexpr int kElementsPerThread = 4;  // a block covers 1,024 elements per pass
inline constexpr int64_t kMaxElementwiseBlocks = 4096;

inline dim3 elementwise_grid(int64_t n) {
  return dim3(static_cast<unsigned>(std::clamp<int64_t>(
      ceil_div(n, kElementwiseThreads * kElementsPerThread), 1, kMaxElementwiseBlocks)));
}

}  // namespace quilt::kernels::detail
