// Kernels for the CUDA simulator's own tests (see sim_kernels.h). Written as any Quilt kernel is:
// launched through launch_kernel, so nvcc compiles this file too.
#include "tests/kernels/sim/sim_kernels.h"

#include <cuda_bf16.h>
#include <mma.h>

#include "kernels/common/launch.h"

namespace quilt::sim::test {
namespace {

using kernels::LaunchConfig;
using kernels::launch_kernel;

__global__ void write_one_past_end_kernel(float* p, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i <= n) p[i] = 1.0f;  // the planted bug: <= instead of <
}

// A shared-memory tree reduction with the barrier inside the loop left out.
__global__ void reduce_missing_barrier_kernel(const float* in, float* out, int n) {
  __shared__ float s[128];
  const int t = static_cast<int>(threadIdx.x);
  s[t] = t < n ? in[t] : 0.f;
  __syncthreads();
  for (int stride = 64; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    // __syncthreads();  -- the planted bug
  }
  if (t == 0) *out = s[0];
}

__global__ void all_threads_write_one_word_kernel(int* out) {
  __shared__ int word;
  word = static_cast<int>(threadIdx.x);  // the planted bug: a write-write race
  __syncthreads();
  if (threadIdx.x == 0) *out = word;
}

__global__ void barrier_in_half_the_block_kernel(int* out) {
  if (threadIdx.x >= 16) return;  // the planted bug: these threads never reach the barrier
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barriers_at_two_sites_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();  // the planted bug: a different barrier
  }
  out[threadIdx.x] = 1;
}

__global__ void read_dynamic_shared_past_end_kernel(float* out, int shared_floats) {
  float* s = kernels::dynamic_shared<float>();
  s[threadIdx.x] = 1.f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x + shared_floats];  // the planted bug: past the end
}

__global__ void shuffle_with_missing_lane_kernel(float* out) {
  // 16 threads, but the mask names all 32 lanes of the warp.
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}

__global__ void block_sum_kernel(const float* in, float* out, int n) {
  __shared__ float warp_sums[32];
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  float v = i < n ? in[i] : 0.f;
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = static_cast<int>(blockDim.x / 32);
    float w = lane < warps ? warp_sums[lane] : 0.f;
    for (int o = 16; o > 0; o /= 2) w += __shfl_xor_sync(0xffffffffu, w, o);
    if (lane == 0) atomicAdd(out, w);
  }
}

// out[0..31]: shfl_up by 1; [32..63]: shfl_idx from lane 5 within groups of 8; [64]: ballot of odd
// inputs; [65]: any(in == 7); [66]: all(in ≥ 0); [67..98]: __reduce_add_sync; [99]: atomicMax.
__global__ void warp_ops_kernel(const int* in, int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  const int v = in[lane];
  out[lane] = __shfl_up_sync(0xffffffffu, v, 1);
  out[32 + lane] = __shfl_sync(0xffffffffu, v, 5, 8);
  const unsigned ballot = __ballot_sync(0xffffffffu, v % 2 != 0);
  const int any = __any_sync(0xffffffffu, v == 7);
  const int all = __all_sync(0xffffffffu, v >= 0);
  const int sum = __reduce_add_sync(0xffffffffu, v);
  if (lane == 0) {
    out[64] = static_cast<int>(ballot);
    out[65] = any;
    out[66] = all;
  }
  out[67 + lane] = sum;
  atomicMax(out + 99, v);
}

// One warp per 16×16 tile of C = A·B (A: m×k row-major, B: k×n row-major, bf16; C float).
__global__ void wmma_gemm_kernel(const __nv_bfloat16* a, const __nv_bfloat16* b, float* c, int m,
                                 int n, int k) {
  using namespace nvcuda;
  const int tile_m = static_cast<int>(blockIdx.y) * 16, tile_n = static_cast<int>(blockIdx.x) * 16;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  for (int kk = 0; kk < k; kk += 16) {
    wmma::load_matrix_sync(fa, a + tile_m * k + kk, k);
    wmma::load_matrix_sync(fb, b + kk * n + tile_n, n);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(c + tile_m * n + tile_n, acc, n, wmma::mem_row_major);
  (void)m;
}

__global__ void scale_kernel(float* p, float s, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) p[i] *= s;
}

unsigned blocks(int n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

cudaError_t write_one_past_end(float* p, int n) {
  return launch_kernel<&write_one_past_end_kernel>(LaunchConfig{dim3(blocks(n + 1, 64)), dim3(64)}, p, n);
}
cudaError_t reduce_missing_barrier(const float* in, float* out, int n) {
  return launch_kernel<&reduce_missing_barrier_kernel>(LaunchConfig{dim3(1), dim3(128)}, in, out, n);
}
cudaError_t all_threads_write_one_word(int* out) {
  return launch_kernel<&all_threads_write_one_word_kernel>(LaunchConfig{dim3(1), dim3(64)}, out);
}
cudaError_t barrier_in_half_the_block(int* out) {
  return launch_kernel<&barrier_in_half_the_block_kernel>(LaunchConfig{dim3(1), dim3(32)}, out);
}
cudaError_t barriers_at_two_sites(int* out) {
  return launch_kernel<&barriers_at_two_sites_kernel>(LaunchConfig{dim3(1), dim3(32)}, out);
}
cudaError_t read_dynamic_shared_past_end(float* out, int shared_floats) {
  return launch_kernel<&read_dynamic_shared_past_end_kernel>(
      LaunchConfig{dim3(1), dim3(32), shared_floats * sizeof(float)}, out, shared_floats);
}
cudaError_t shuffle_with_missing_lane(float* out) {
  return launch_kernel<&shuffle_with_missing_lane_kernel>(LaunchConfig{dim3(1), dim3(16)}, out);
}
cudaError_t block_sum(const float* in, float* out, int n, int threads) {
  return launch_kernel<&block_sum_kernel>(LaunchConfig{dim3(blocks(n, threads)), dim3(threads)}, in, out, n);
}
cudaError_t warp_ops(const int* in, int* out) {
  return launch_kernel<&warp_ops_kernel>(LaunchConfig{dim3(1), dim3(32)}, in, out);
}
cudaError_t wmma_gemm(const void* a, const void* b, float* c, int m, int n, int k) {
  return launch_kernel<&wmma_gemm_kernel>(
      LaunchConfig{dim3(static_cast<unsigned>(n / 16), static_cast<unsigned>(m / 16)), dim3(32)},
      static_cast<const __nv_bfloat16*>(a), static_cast<const __nv_bfloat16*>(b), c, m, n, k);
}
cudaError_t scale(float* p, float s, int n, cudaStream_t stream) {
  return launch_kernel<&scale_kernel>(LaunchConfig{dim3(blocks(n, 128)), dim3(128), 0, stream}, p, s, n);
}

}  // namespace quilt::sim::test
