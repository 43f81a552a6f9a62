// Per-head RMSNorm: one block per (row, head); each thread keeps the values it read in registers,
// so the in-place write needs no second read.
#include "kernels/norm/rms_norm_heads.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::norm {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 128;
constexpr int kMaxPerThread = 4;  // head_dim ≤ 512
constexpr int kMaxHeadDim = kThreads * kMaxPerThread;

template <typename T>
__global__ void rms_norm_heads_kernel(const __grid_constant__ RmsNormHeadsParams<T> p) {
  __shared__ float scratch[32];
  T* x = p.x + static_cast<int64_t>(blockIdx.x) * p.stride +
         static_cast<int64_t>(blockIdx.y) * p.head_dim;
  float v[kMaxPerThread];
  float sum = 0.f;
#pragma unroll
  for (int a = 0; a < kMaxPerThread; ++a) {
    const int i = threadIdx.x + a * kThreads;
    v[a] = i < p.head_dim ? to_float(x[i]) : 0.f;
    sum += v[a] * v[a];
  }
  sum = detail::block_sum(sum, scratch);
  const float inv = 1.0f / sqrtf(sum / static_cast<float>(p.head_dim) + p.eps);
#pragma unroll
  for (int a = 0; a < kMaxPerThread; ++a) {
    const int i = threadIdx.x + a * kThreads;
    if (i < p.head_dim) x[i] = from_float<T>(to_float(p.weight[i]) * (v[a] * inv));
  }
}

}  // namespace

template <typename T>
cudaError_t rms_norm_heads_cuda(const RmsNormHeadsParams<T>& p, cudaStream_t stream) {
  if (p.rows < 0 || p.rows > 0x7fffffff || p.num_heads < 0 || p.num_heads > 65535 ||
      p.head_dim <= 0 || p.head_dim > kMaxHeadDim ||
      p.stride < static_cast<int64_t>(p.num_heads) * p.head_dim) {
    return cudaErrorInvalidValue;
  }
  if (p.rows == 0 || p.num_heads == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.rows), static_cast<unsigned>(p.num_heads));
  return launch_kernel<&rms_norm_heads_kernel<T>>(LaunchConfig{grid, dim3(kThreads), 0, stream},
                                                  p);
}

template cudaError_t rms_norm_heads_cuda<__nv_bfloat16>(const RmsNormHeadsParams<__nv_bfloat16>&,
                                                        cudaStream_t);
template cudaError_t rms_norm_heads_cuda<__half>(const RmsNormHeadsParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::norm
