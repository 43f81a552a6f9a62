// The simulator's side of kernels/common/launch.h: runs a kernel body over a grid on the CPU.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string_view>

namespace quilt::sim {

// Runs body once per thread of every block of grid × block on `stream` (now, or recorded into a
// graph while the stream is capturing). Every thread of a block runs concurrently with the others
// (fibers), so barriers and warp exchanges have CUDA's semantics; faults are reported under `name`.
cudaError_t launch(std::string_view name, dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, std::function<void()> body);

// The running block's dynamic shared memory (the launch's shared_bytes), 16-byte aligned.
void* dynamic_shared_base();

}  // namespace quilt::sim
