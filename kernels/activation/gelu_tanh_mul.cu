// gelu_tanh(g) · u elementwise (kernels/activation/gated_mul.cuh), with the accurate tanhf.
#include "kernels/activation/gelu_tanh_mul.h"

#include "kernels/activation/gated_mul.cuh"

namespace quilt::kernels::activation {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

struct GeluTanh {
  __device__ float operator()(float g) const {
    return 0.5f * g * (1.0f + tanhf(kSqrt2OverPi * (g + kCubic * g * g * g)));
  }
};

}  // namespace

template <typename T>
cudaError_t gelu_tanh_mul_cuda(const GeluTanhMulParams<T>& p, cudaStream_t stream) {
  return detail::gated_mul_cuda<T, GeluTanh>(p, stream);
}

template cudaError_t gelu_tanh_mul_cuda<__nv_bfloat16>(const GeluTanhMulParams<__nv_bfloat16>&,
                                                       cudaStream_t);
template cudaError_t gelu_tanh_mul_cuda<__half>(const GeluTanhMulParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::activation
