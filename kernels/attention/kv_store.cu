// kv_store: one block per token copies its K and V rows into their cache slot.
#include "kernels/attention/paged_kv.h"

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::attention {
namespace {

constexpr int kMaxThreads = 256;

__global__ void kv_store_kernel(const __grid_constant__ KvStoreParams p) {
  const int64_t t = blockIdx.x;
  const int64_t slot = p.kv_slots[t];
  for (int64_t c = threadIdx.x; c < p.kv_dim; c += blockDim.x) {
    p.k_cache[slot * p.kv_dim + c] = p.k[t * p.kv_dim + c];
    p.v_cache[slot * p.kv_dim + c] = p.v[t * p.kv_dim + c];
  }
}

}  // namespace

cudaError_t kv_store_cuda(const KvStoreParams& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_tokens > 0x7fffffff || p.kv_dim <= 0) return cudaErrorInvalidValue;
  if (p.num_tokens == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.num_tokens));
  return launch_kernel<&kv_store_kernel>(
      LaunchConfig{grid, dim3(detail::threads_for(p.kv_dim, kMaxThreads)), 0, stream}, p);
}

}  // namespace quilt::kernels::attention
