// Pointwise ops of the newer architectures: a row bias (Qwen2's q/k/v biases), a scalar scale
// (Gemma's embedding √hidden) and tanh soft-capping (Gemma 2's final logits). float32 math.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::elementwise {

template <typename T>
struct AddBiasParams {
  T* y;           // [rows, cols], contiguous, T: y[r, c] += bias[c]
  const T* bias;  // [cols], T
  int64_t rows;
  int64_t cols;
};

template <typename T>
struct ScaleParams {
  T* x;  // [n], T (bf16, fp16 or float), scaled in place
  int64_t n;
  float s;
};

struct SoftcapParams {
  float* x;  // [n], float32, in place: x = cap · tanh(x / cap)
  int64_t n;
  float cap;  // > 0
};

// Each enqueues on `stream` and returns the launch's error. Thread-safe.
template <typename T>
cudaError_t add_bias_cuda(const AddBiasParams<T>& p, cudaStream_t stream);
template <typename T>
cudaError_t scale_cuda(const ScaleParams<T>& p, cudaStream_t stream);
cudaError_t softcap_cuda(const SoftcapParams& p, cudaStream_t stream);

extern template cudaError_t add_bias_cuda<__nv_bfloat16>(const AddBiasParams<__nv_bfloat16>&,
                                                         cudaStream_t);
extern template cudaError_t add_bias_cuda<__half>(const AddBiasParams<__half>&, cudaStream_t);
extern template cudaError_t scale_cuda<__nv_bfloat16>(const ScaleParams<__nv_bfloat16>&,
                                                      cudaStream_t);
extern template cudaError_t scale_cuda<__half>(const ScaleParams<__half>&, cudaStream_t);
extern template cudaError_t scale_cuda<float>(const ScaleParams<float>&, cudaStream_t);

}  // namespace quilt::kernels::elementwise
