// silu(g) · u elementwise (kernels/activation/gated_mul.cuh), with the accurate expf.
#include "kernels/activation/silu_mul.h"

#include "kernels/activation/gated_mul.cuh"

namespace quilt::kernels::activation {
namespace {

struct Silu {
  __device__ float operator()(float g) const { return g / (1.0f + expf(-g)); }
};

}  // namespace

template <typename T>
cudaError_t silu_mul_cuda(const SiluMulParams<T>& p, cudaStream_t stream) {
  return detail::gated_mul_cuda<T, Silu>(p, stream);
}

template cudaError_t silu_mul_cuda<__nv_bfloat16>(const SiluMulParams<__nv_bfloat16>&,
                                                  cudaStream_t);
template cudaError_t silu_mul_cuda<__half>(const SiluMulParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::activation
