// Row gather: one block per output row, threads stride the columns (coalesced reads and writes).
#include "kernels/embedding/embedding.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::embedding {
namespace {

constexpr int kMaxThreads = 256;

__global__ void gather_rows_kernel(const __grid_constant__ GatherParams p) {
  const int64_t i = blockIdx.x;
  const __nv_bfloat16* src = p.src + static_cast<int64_t>(p.rows[i]) * p.cols;
  __nv_bfloat16* out = p.out + i * p.cols;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) out[c] = src[c];
}

}  // namespace

cudaError_t gather_rows_cuda(const GatherParams& p, cudaStream_t stream) {
  if (p.num_rows < 0 || p.cols <= 0 || p.num_rows > 0x7fffffff) return cudaErrorInvalidValue;
  if (p.num_rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.num_rows));
  const dim3 block(detail::threads_for(p.cols, kMaxThreads));
  return launch_kernel<&gather_rows_kernel>(LaunchConfig{grid, block, 0, stream}, p);
}

}  // namespace quilt::kernels::embedding
