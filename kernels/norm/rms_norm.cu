// RMSNorm: one block per row; the sum of squares in float32, reduced by shuffles then shared
// memory.
#include "kernels/norm/rms_norm.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::norm {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kMaxThreads = 512;

template <typename T>
__global__ void rms_norm_kernel(const __grid_constant__ RmsNormParams<T> p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* x = p.x + row * p.cols;
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < p.cols; i += blockDim.x) {
    const float v = to_float(x[i]);
    sum += v * v;
  }
  sum = detail::block_sum(sum, scratch);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(p.cols) + p.eps);
  T* out = p.out + row * p.cols;
  for (int64_t i = threadIdx.x; i < p.cols; i += blockDim.x) {
    out[i] = from_float<T>(to_float(p.weight[i]) * (to_float(x[i]) * inv));
  }
}

}  // namespace

template <typename T>
cudaError_t rms_norm_cuda(const RmsNormParams<T>& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols <= 0 || p.rows > 0x7fffffff) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.rows));
  const dim3 block(detail::threads_for(p.cols, kMaxThreads));
  return launch_kernel<&rms_norm_kernel<T>>(LaunchConfig{grid, block, 0, stream}, p);
}

template cudaError_t rms_norm_cuda<__nv_bfloat16>(const RmsNormParams<__nv_bfloat16>&,
                                                  cudaStream_t);
template cudaError_t rms_norm_cuda<__half>(const RmsNormParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::norm
