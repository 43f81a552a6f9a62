// The simulator's shared internals: one lock for device work, the sticky error, address naming.
// Private to kernels/sim/.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace quilt::sim {

// Device work (kernels, copies, BLAS calls) runs one item at a time under this lock: the simulated
// GPU is one in-order engine, which keeps the memory checks free of host-side races.
std::recursive_mutex& device_mutex();

// Runs all queued work (cudaDeviceSynchronize), or what `stream` has queued (the legacy default
// stream: what every blocking stream has queued), before returning.
void synchronize_device();
void synchronize_stream(cudaStream_t stream);

// The sticky error left by a fault report (cudaSuccess when none is pending).
cudaError_t sticky_error();
size_t pending_report_count();

// "0x7f.. (12 bytes past the end of a 1024-byte device allocation at 0x7f..)": where p lies.
std::string describe_address(uintptr_t p);

}  // namespace quilt::sim
