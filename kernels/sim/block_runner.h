// Runs a kernel's grid block by block; inside a block every CUDA thread is a fiber, switched at
// barriers and warp collectives, so a block's threads run concurrently in CUDA's sense. What the
// memory checks need to know about the running thread is here. Private to kernels/sim/.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace quilt::sim {

// True while a kernel thread runs on this OS thread (the access hooks check nothing otherwise).
extern thread_local bool g_in_kernel;
// Memory accesses of the running thread since it last waited: blocks run one at a time here, so a
// thread spinning on a flag another block would set never gets anywhere; the hooks stop it.
extern thread_local uint64_t g_accesses_since_wait;

struct ThreadInfo {
  int32_t tid;             // linear thread index in the block
  int32_t warp;            // tid / 32
  uint32_t barrier_epoch;  // __syncthreads() passed by the block so far
  uint32_t warp_epoch;     // warp collectives completed by this thread's warp so far
};
ThreadInfo current_thread_info();

// "kernel K, thread (x,y,z) of block (x,y,z)" for reports; "thread (x,y,z)" for thread tid.
std::string current_location();
std::string thread_name(int32_t tid);

// A fault by the running kernel thread (its location is appended). A fatal one (an address that
// cannot be touched at all) ends the launch: the thread never resumes and no further block runs.
void fault_in_kernel(const std::string& what, bool fatal);

// Runs every block of the grid now, on the calling OS thread (the caller holds device_mutex()).
void run_grid(std::string_view kernel, dim3 grid, dim3 block, size_t shared_bytes,
              const std::function<void()>& body);

}  // namespace quilt::sim
