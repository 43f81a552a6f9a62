// add_bias, scale and softcap: grid-stride loops, each element read and written once.
#include "kernels/elementwise/bias_scale.h"

#include <cmath>

#include "kernels/common/launch.h"
#include "kernels/elementwise/grid.cuh"

namespace quilt::kernels::elementwise {
namespace {

using detail::from_float;
using detail::to_float;

template <typename T>
__global__ void add_bias_kernel(const __grid_constant__ AddBiasParams<T> p) {
  const int64_t n = p.rows * p.cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    p.y[i] = from_float<T>(to_float(p.y[i]) + to_float(p.bias[i % p.cols]));
  }
}

template <typename T>
__global__ void scale_kernel(const __grid_constant__ ScaleParams<T> p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    p.x[i] = from_float<T>(to_float(p.x[i]) * p.s);
  }
}

__global__ void softcap_kernel(const __grid_constant__ SoftcapParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const float inv = 1.0f / p.cap;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += stride) {
    p.x[i] = p.cap * tanhf(p.x[i] * inv);
  }
}

LaunchConfig flat(int64_t n, cudaStream_t stream) {
  return LaunchConfig{detail::elementwise_grid(n), dim3(detail::kElementwiseThreads), 0, stream};
}

}  // namespace

template <typename T>
cudaError_t add_bias_cuda(const AddBiasParams<T>& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols <= 0) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  return launch_kernel<&add_bias_kernel<T>>(flat(p.rows * p.cols, stream), p);
}

template <typename T>
cudaError_t scale_cuda(const ScaleParams<T>& p, cudaStream_t stream) {
  if (p.n < 0 || !std::isfinite(p.s)) return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  return launch_kernel<&scale_kernel<T>>(flat(p.n, stream), p);
}

cudaError_t softcap_cuda(const SoftcapParams& p, cudaStream_t stream) {
  if (p.n < 0 || !(p.cap > 0.f) || !std::isfinite(p.cap)) return cudaErrorInvalidValue;
  if (p.n == 0) return cudaSuccess;
  return launch_kernel<&softcap_kernel>(flat(p.n, stream), p);
}

template cudaError_t add_bias_cuda<__nv_bfloat16>(const AddBiasParams<__nv_bfloat16>&,
                                                  cudaStream_t);
template cudaError_t add_bias_cuda<__half>(const AddBiasParams<__half>&, cudaStream_t);
template cudaError_t scale_cuda<__nv_bfloat16>(const ScaleParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t scale_cuda<__half>(const ScaleParams<__half>&, cudaStream_t);
template cudaError_t scale_cuda<float>(const ScaleParams<float>&, cudaStream_t);

}  // namespace quilt::kernels::elementwise
