// kv_store: one block per token copies its K and V rows into their cache slot.
#include "kernels/attention/paged_kv.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::attention {
namespace {

constexpr int kMaxThreads = 256;

template <typename T>
__global__ void kv_store_kernel(const __grid_constant__ KvStoreParams<T> p) {
  const int64_t t = blockIdx.x;
  const int64_t slot = p.kv_slots[t];
  for (int64_t c = threadIdx.x; c < p.kv_dim; c += blockDim.x) {
    p.k_cache[slot * p.kv_dim + c] = p.k[t * p.k_stride + c];
    p.v_cache[slot * p.kv_dim + c] = p.v[t * p.v_stride + c];
  }
}

}  // namespace

template <typename T>
cudaError_t kv_store_cuda(const KvStoreParams<T>& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_tokens > 0x7fffffff || p.kv_dim <= 0 || p.k_stride < p.kv_dim ||
      p.v_stride < p.kv_dim) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.num_tokens));
  return launch_kernel<&kv_store_kernel<T>>(
      LaunchConfig{grid, dim3(detail::threads_for(p.kv_dim, kMaxThreads)), 0, stream}, p);
}

template cudaError_t kv_store_cuda<__nv_bfloat16>(const KvStoreParams<__nv_bfloat16>&,
                                                  cudaStream_t);
template cudaError_t kv_store_cuda<__half>(const KvStoreParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::attention
