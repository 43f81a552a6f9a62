// The base-model GEMMs through cuBLASLt: out[M, N] = x[M, K] · w[N, K]ᵀ with fp16 or bf16 inputs,
// float32 accumulation and an output of the inputs' dtype or float32. Not thread-safe (the
// backend's engine thread).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "common/status.h"
#include "engine/backend/backend.h"
#include "engine/backend/cuda/cuda_handles.h"

namespace quilt::engine::cuda {

class Gemm {
 public:
  Gemm();
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  Status init();
  // out = x · wᵀ + beta · out (beta 0 or 1), enqueued on `stream`; x and w are both fp16 or both
  // bf16, out the same or float32.
  Status run(const Tensor& x, const Tensor& w, Tensor& out, float beta, cudaStream_t stream);

 private:
  // Descriptors and the heuristic's algorithm for one shape; built once, reused every step.
  struct Plan;
  using Key = std::tuple<int64_t, int64_t, int64_t, int>;  // M, N, K, input and output dtypes
  Result<const Plan*> plan(int64_t m, int64_t n, int64_t k, DType in_dtype, DType out_dtype);

  LtHandle handle_;
  std::shared_ptr<DeviceMemory> workspace_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace quilt::engine::cuda
