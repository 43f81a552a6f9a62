// The one way Quilt launches a kernel: the same call compiles with nvcc (a real <<<>>> launch) and
// as host C++ against the CUDA simulator (kernels/sim), so the source that is tested on a CPU is
// the source that runs on a GPU. No other file writes <<<>>>.
//
//   return launch_kernel<&my_kernel<T, 8>>(LaunchConfig{grid, block, 0, stream}, params);
//
// Include only from .cu files. Thread-safe: launches carry no state of their own.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string_view>
#include <utility>

#ifdef QUILT_CUDA_SIM
#include "kernels/sim/sim_launch.h"
#endif

namespace quilt::kernels {

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t shared_bytes = 0;  // dynamic shared memory, read through dynamic_shared<T>()
  cudaStream_t stream = nullptr;
};

// "quilt::kernels::sgmv::{anon}::shrink_kernel<__nv_bfloat16, 8, 1, 2, 4>": the kernel's name as
// the compiler spells the template argument, for the simulator's reports.
template <auto Kernel>
constexpr std::string_view kernel_name() {
  constexpr std::string_view f = __PRETTY_FUNCTION__;
  constexpr std::string_view key = "Kernel = ";
  constexpr size_t b = f.find(key) == std::string_view::npos ? 0 : f.find(key) + key.size();
  constexpr size_t e = f.find_first_of(";]", b);
  return f.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
}

// Launches Kernel(args...) over cfg; returns the launch's error (cudaGetLastError afterwards).
// Arguments are copied, as CUDA copies kernel parameters.
template <auto Kernel, typename... Args>
cudaError_t launch_kernel(const LaunchConfig& cfg, const Args&... args) {
#ifdef QUILT_CUDA_SIM
  return sim::launch(kernel_name<Kernel>(), cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream,
                     [args...]() { Kernel(args...); });
#else
  Kernel<<<cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream>>>(args...);
  return cudaGetLastError();
#endif
}

// The block's dynamic shared memory (LaunchConfig::shared_bytes of it), 16-byte aligned.
template <typename T>
__device__ __forceinline__ T* dynamic_shared() {
#ifdef QUILT_CUDA_SIM
  return reinterpret_cast<T*>(sim::dynamic_shared_base());
#else
  extern __shared__ __align__(16) unsigned char quilt_dynamic_shared[];
  return reinterpret_cast<T*>(quilt_dynamic_shared);
#endif
}

}  // namespace quilt::kernels
