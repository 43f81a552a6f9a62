// What the simulator's library parts (runtime, cuBLAS, cuBLASLt) share: stream work, device
// memory checks and fault reports. Private to kernels/sim/ and its tests.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace quilt::sim {

// Runs op on `stream` in order with everything else on it: at once, or recorded into the graph
// being captured on that stream (and run at each cudaGraphLaunch). `what` names it in reports.
// Returns cudaErrorInvalidResourceHandle for a destroyed stream and the sticky error, if any.
cudaError_t enqueue(cudaStream_t stream, std::string_view what, std::function<void()> op);

// True when [p, p + bytes) lies inside one live device or pinned-host allocation. Otherwise files
// a fault report naming `what` and the address, and returns false.
bool check_device_span(const void* p, size_t bytes, std::string_view what);

// Files a fault: printed to stderr at once, kept for take_reports(), and turned into the sticky
// cudaErrorIllegalAddress that later runtime calls return (until cudaDeviceReset).
void report(std::string message);

// The fault reports filed since the last call, oldest first; clears them and the sticky error.
// Tests of planted faults read them; a test that files one unexpectedly fails (sim_gtest.cc).
std::vector<std::string> take_reports();

}  // namespace quilt::sim
