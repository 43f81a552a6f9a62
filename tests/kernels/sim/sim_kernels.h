// Kernels for the CUDA simulator's own tests: planted faults it must report, and known results it
// must reproduce. Each launcher runs on the default stream and returns the launch's error.
#pragma once

#include <cuda_runtime.h>

namespace quilt::sim::test {

// Planted faults.
cudaError_t write_one_past_end(float* p, int n);          // threads 0..n write p[i]; one too many
cudaError_t reduce_missing_barrier(const float* in, float* out, int n);  // no barrier in the tree
cudaError_t all_threads_write_one_word(int* out);          // every thread writes shared[0]
cudaError_t barrier_in_half_the_block(int* out);           // threads ≥ 16 skip __syncthreads
cudaError_t barriers_at_two_sites(int* out);               // odd and even threads: other barriers
cudaError_t read_dynamic_shared_past_end(float* out, int shared_floats);
cudaError_t shuffle_with_missing_lane(float* out);         // a 0xffffffff shuffle in half a warp

// Known results.
cudaError_t block_sum(const float* in, float* out, int n, int threads);  // out[0] = Σ in (atomics)
cudaError_t warp_ops(const int* in, int* out);             // 32 threads: see sim_kernels.cu
cudaError_t wmma_gemm(const void* a_bf16, const void* b_bf16, float* c, int m, int n, int k);
cudaError_t scale(float* p, float s, int n, cudaStream_t stream);

}  // namespace quilt::sim::test
