// CudaBackend's ops of the Qwen, Gemma and Phi architectures: q/k/v biases, per-head q/k norms,
// GeGLU, the embedding scale and final logit soft-capping. Each checks shapes on the host and
// enqueues one kernels/ launch.
#include <cmath>
#include <string>

#include "engine/backend/cuda/cuda_backend.h"
#include "kernels/activation/gelu_tanh_mul.h"
#include "kernels/elementwise/bias_scale.h"
#include "kernels/norm/rms_norm_heads.h"

namespace quilt::engine::cuda {

Status CudaBackend::gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  QUILT_RETURN_IF_ERROR(check(gate, "gelu_tanh_mul gate", true));
  QUILT_RETURN_IF_ERROR(check(up, "gelu_tanh_mul up", true));
  QUILT_RETURN_IF_ERROR(check(out, "gelu_tanh_mul output"));
  if (gate.rows != up.rows || gate.cols != up.cols || gate.rows != out.rows ||
      gate.cols != out.cols) {
    return Status::Internal("cuda backend: gelu_tanh_mul: shapes do not agree");
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::activation::GeluTanhMulParams<T> p{gate.as<T>(), up.as<T>(),      out.as<T>(),
                                                      gate.rows,    gate.cols,       gate.stride(),
                                                      up.stride()};
    return kernels::activation::gelu_tanh_mul_cuda(p, stream());
  }));
}

Status CudaBackend::add_bias(Tensor& y, const Tensor& bias) {
  QUILT_RETURN_IF_ERROR(check(y, "add_bias output"));
  QUILT_RETURN_IF_ERROR(check(bias, "add_bias bias"));
  if (bias.num_elements() != y.cols || y.cols == 0) {
    return Status::Internal("cuda backend: add_bias: the bias has " +
                            std::to_string(bias.num_elements()) + " elements for " +
                            std::to_string(y.cols) + " columns");
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::elementwise::AddBiasParams<T> p{y.as<T>(), bias.as<T>(), y.rows, y.cols};
    return kernels::elementwise::add_bias_cuda(p, stream());
  }));
}

Status CudaBackend::rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) {
  QUILT_RETURN_IF_ERROR(check(x, "rms_norm_heads input", true));
  QUILT_RETURN_IF_ERROR(check(weight, "rms_norm_heads weight"));
  if (head_dim <= 0 || head_dim > 512 || x.cols % head_dim != 0 ||
      weight.num_elements() != head_dim || x.cols / head_dim > 65535 || !(eps >= 0.f)) {
    return Status::Internal("cuda backend: rms_norm_heads: " + std::to_string(x.cols) +
                            " columns, head_dim " + std::to_string(head_dim) + ", weight of " +
                            std::to_string(weight.num_elements()) + " (head_dim at most 512)");
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::norm::RmsNormHeadsParams<T> p{x.as<T>(),
                                                 weight.as<T>(),
                                                 x.rows,
                                                 static_cast<int32_t>(x.cols / head_dim),
                                                 static_cast<int32_t>(head_dim),
                                                 x.stride(),
                                                 eps};
    return kernels::norm::rms_norm_heads_cuda(p, stream());
  }));
}

Status CudaBackend::scale(Tensor& x, float s) {
  if (!std::isfinite(s)) return Status::Internal("cuda backend: scale by a non-finite factor");
  if (x.dtype == DType::kF32) {
    if (!x.contiguous() || (x.data == nullptr && x.num_elements() > 0)) {
      return Status::Internal("cuda backend: scale of a float32 view");
    }
    const kernels::elementwise::ScaleParams<float> p{x.as<float>(), x.num_elements(), s};
    return QUILT_CUDA_STATUS(kernels::elementwise::scale_cuda(p, stream()));
  }
  QUILT_RETURN_IF_ERROR(check(x, "scale input"));
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    const kernels::elementwise::ScaleParams<T> p{x.as<T>(), x.num_elements(), s};
    return kernels::elementwise::scale_cuda(p, stream());
  }));
}

Status CudaBackend::softcap(Tensor& x, float cap) {
  if (x.dtype != DType::kF32 || !x.contiguous() || (x.data == nullptr && x.num_elements() > 0)) {
    return Status::Internal("cuda backend: softcap takes contiguous float32 logits");
  }
  if (!(cap > 0.f) || !std::isfinite(cap)) {
    return Status::Internal("cuda backend: softcap of " + std::to_string(cap) +
                            " (must be positive)");
  }
  const kernels::elementwise::SoftcapParams p{x.as<float>(), x.num_elements(), cap};
  return QUILT_CUDA_STATUS(kernels::elementwise::softcap_cuda(p, stream()));
}

}  // namespace quilt::engine::cuda
