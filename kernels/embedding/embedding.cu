// Row gather: one block per output row, threads stride the columns (coalesced reads and writes).
#include "kernels/embedding/embedding.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::embedding {
namespace {

constexpr int kMaxThreads = 256;

template <typename T>
__global__ void gather_rows_kernel(const __grid_constant__ GatherParams<T> p) {
  const int64_t i = blockIdx.x;
  const T* src = p.src + static_cast<int64_t>(p.rows[i]) * p.cols;
  T* out = p.out + i * p.cols;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) out[c] = src[c];
}

}  // namespace

template <typename T>
cudaError_t gather_rows_cuda(const GatherParams<T>& p, cudaStream_t stream) {
  if (p.num_rows < 0 || p.cols <= 0 || p.num_rows > 0x7fffffff) return cudaErrorInvalidValue;
  if (p.num_rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.num_rows));
  const dim3 block(detail::threads_for(p.cols, kMaxThreads));
  return launch_kernel<&gather_rows_kernel<T>>(LaunchConfig{grid, block, 0, stream}, p);
}

template cudaError_t gather_rows_cuda<__nv_bfloat16>(const GatherParams<__nv_bfloat16>&,
                                                     cudaStream_t);
template cudaError_t gather_rows_cuda<__half>(const GatherParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::embedding
