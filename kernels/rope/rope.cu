// RoPE: one block per token, a thread per (head, pair); q's heads then k's.
#include "kernels/rope/rope.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::rope {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kMaxThreads = 256;

template <typename T>
__global__ void rope_kernel(const __grid_constant__ RopeParams<T> p) {
  const int64_t t = blockIdx.x;
  const int half = p.head_dim / 2;
  const int pairs = (p.num_q_heads + p.num_k_heads) * half;
  const int32_t position = p.positions[t];
  const float pos = static_cast<float>(position);
  const float* inv_freq = p.long_from_position > 0 && position >= p.long_from_position
                              ? p.long_inv_freq
                              : p.inv_freq;
  for (int idx = threadIdx.x; idx < pairs; idx += blockDim.x) {
    const int head = idx / half, i = idx % half;
    T* v = head < p.num_q_heads
               ? p.q + t * p.q_stride + static_cast<int64_t>(head) * p.head_dim
               : p.k + t * p.k_stride + static_cast<int64_t>(head - p.num_q_heads) * p.head_dim;
    // Double-precision cosine and sine of the float32 angle, as the CPU path (and torch) take them.
    const double angle = static_cast<double>(pos * inv_freq[i]);
    const float c = static_cast<float>(cos(angle)) * p.attention_scaling;
    const float s = static_cast<float>(sin(angle)) * p.attention_scaling;
    const float a = to_float(v[i]), b = to_float(v[i + half]);
    v[i] = from_float<T>(a * c - b * s);
    v[i + half] = from_float<T>(b * c + a * s);
  }
}

}  // namespace

template <typename T>
cudaError_t rope_cuda(const RopeParams<T>& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_tokens > 0x7fffffff || p.head_dim <= 0 || p.head_dim % 2 != 0 ||
      p.num_q_heads < 0 || p.num_k_heads < 0 ||
      p.q_stride < static_cast<int64_t>(p.num_q_heads) * p.head_dim ||
      p.k_stride < static_cast<int64_t>(p.num_k_heads) * p.head_dim ||
      p.long_from_position < 0 || (p.long_from_position > 0 && p.long_inv_freq == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const int64_t pairs = static_cast<int64_t>(p.num_q_heads + p.num_k_heads) * (p.head_dim / 2);
  const dim3 grid(static_cast<unsigned>(p.num_tokens));
  return launch_kernel<&rope_kernel<T>>(
      LaunchConfig{grid, dim3(detail::threads_for(pairs, kMaxThreads)), 0, stream}, p);
}

template cudaError_t rope_cuda<__nv_bfloat16>(const RopeParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t rope_cuda<__half>(const RopeParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::rope
