// Paged causal attention: one block per (query token, KV head), the context walked in chunks of
// kChunk positions with an online softmax.
//
// Per chunk: (1) each thread takes one position, loads its K row once and scores it against every
// query head of the group (q staged in shared memory as float); (2) a warp per head takes the
// chunk's max, turns scores into exp(s - m) and sums them, updating the running max m, sum l and
// the factor alpha that rescales earlier chunks; (3) each thread owns up to kMaxAcc (head, dim)
// outputs and adds Σ p · V over the chunk (a V row is read coalesced across threads). Three
// barriers a chunk; the output is acc / l.
#include "kernels/attention/paged_attention.h"

#include <cmath>

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::attention {
namespace {

using detail::kWarpSize;
using detail::from_float;
using detail::to_float;

constexpr int kThreads = 128;
constexpr int kChunk = kThreads;  // positions scored per pass: one per thread
constexpr int kMaxAcc = kMaxGroupWidth / kThreads;

// Shared memory, in floats: q [group * head_dim], scores [group][kChunk], m, l, alpha [group].
inline size_t shared_floats(int group, int head_dim) {
  return static_cast<size_t>(group) * head_dim + static_cast<size_t>(group) * kChunk + 3 * group;
}

template <typename T>
__global__ void paged_attention_kernel(const __grid_constant__ PagedAttentionParams<T> p) {
  const int64_t t = blockIdx.x;
  const int kvh = blockIdx.y;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int group = p.num_heads / p.num_kv_heads;
  const int hd = p.head_dim;
  const int width = group * hd;  // this block's query heads, side by side
  float* q_s = dynamic_shared<float>();
  float* scores = q_s + width;
  float* m = scores + group * kChunk;
  float* l = m + group;
  float* alpha = l + group;

  const AttentionSeq seq = p.seqs[p.token_seq[t]];
  const int visible = seq.ctx_len - seq.q_len + static_cast<int>(t - seq.q_start) + 1;
  const int32_t* blocks = p.block_tables + seq.block_offset;
  const int64_t kv_dim = static_cast<int64_t>(p.num_kv_heads) * hd;
  const int64_t head_base = static_cast<int64_t>(kvh) * group * hd;
  const int64_t row_base = t * p.num_heads * hd + head_base;

  for (int i = tid; i < width; i += kThreads) q_s[i] = to_float(p.q[t * p.q_stride + head_base + i]);
  for (int g = tid; g < group; g += kThreads) {
    m[g] = -INFINITY;
    l[g] = 0.f;
  }
  float acc[kMaxAcc];
  for (int a = 0; a < kMaxAcc; ++a) acc[a] = 0.f;
  __syncthreads();

  for (int base = 0; base < visible; base += kChunk) {
    const int n = min(kChunk, visible - base);
    if (tid < n) {  // (1) score one position against every head of the group
      const int pos = base + tid;
      const int64_t slot =
          static_cast<int64_t>(blocks[pos / p.block_size]) * p.block_size + pos % p.block_size;
      const T* k = p.k_cache + slot * kv_dim + static_cast<int64_t>(kvh) * hd;
      for (int g = 0; g < group; ++g) {
        const float* q = q_s + g * hd;
        float dot = 0.f;
        for (int d = 0; d < hd; ++d) dot += q[d] * to_float(k[d]);
        scores[g * kChunk + tid] = dot * p.scale;
      }
    }
    __syncthreads();
    for (int g = warp; g < group; g += kThreads / kWarpSize) {  // (2) softmax statistics
      float* s = scores + g * kChunk;
      float chunk_max = -INFINITY;
      for (int j = lane; j < n; j += kWarpSize) chunk_max = fmaxf(chunk_max, s[j]);
      chunk_max = detail::warp_max(chunk_max);
      // Only lane 0 touches m, l and alpha; the others learn the old max by shuffle.
      const float m_old = __shfl_sync(0xffffffffu, lane == 0 ? m[g] : 0.f, 0);
      const float m_new = fmaxf(m_old, chunk_max);
      float sum = 0.f;
      for (int j = lane; j < n; j += kWarpSize) {
        const float e = expf(s[j] - m_new);
        s[j] = e;
        sum += e;
      }
      sum = detail::warp_sum(sum);
      if (lane == 0) {
        const float a = expf(m_old - m_new);  // 0 on the first chunk (m_old = -inf)
        alpha[g] = a;
        l[g] = l[g] * a + sum;
        m[g] = m_new;
      }
    }
    __syncthreads();
    for (int a = 0; a < kMaxAcc; ++a) {  // (3) rescale and add this chunk's Σ p · V
      const int i = tid + a * kThreads;
      if (i >= width) break;
      const int g = i / hd, d = i % hd;
      const float* s = scores + g * kChunk;
      float sum = acc[a] * alpha[g];
      for (int j = 0; j < n; ++j) {
        const int pos = base + j;
        const int64_t slot =
            static_cast<int64_t>(blocks[pos / p.block_size]) * p.block_size + pos % p.block_size;
        sum += s[j] * to_float(p.v_cache[slot * kv_dim + static_cast<int64_t>(kvh) * hd + d]);
      }
      acc[a] = sum;
    }
    __syncthreads();  // the next chunk overwrites scores and alpha
  }

  for (int a = 0; a < kMaxAcc; ++a) {
    const int i = tid + a * kThreads;
    if (i >= width) break;
    p.out[row_base + i] = from_float<T>(acc[a] / l[i / hd]);
  }
}

}  // namespace

template <typename T>
cudaError_t paged_attention_cuda(const PagedAttentionParams<T>& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_tokens > 0x7fffffff || p.num_kv_heads <= 0 || p.num_heads <= 0 ||
      p.q_stride < static_cast<int64_t>(p.num_heads) * p.head_dim ||
      p.num_heads % p.num_kv_heads != 0 || p.head_dim <= 0 || p.block_size <= 0 ||
      p.num_kv_heads > 65535) {
    return cudaErrorInvalidValue;
  }
  const int group = p.num_heads / p.num_kv_heads;
  if (group * p.head_dim > kMaxGroupWidth) return cudaErrorInvalidValue;
  if (p.num_tokens == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_kv_heads));
  return launch_kernel<&paged_attention_kernel<T>>(
      LaunchConfig{grid, dim3(kThreads), shared_floats(group, p.head_dim) * sizeof(float), stream},
      p);
}

template cudaError_t paged_attention_cuda<__nv_bfloat16>(const PagedAttentionParams<__nv_bfloat16>&,
                                                         cudaStream_t);
template cudaError_t paged_attention_cuda<__half>(const PagedAttentionParams<__half>&,
                                                  cudaStream_t);

}  // namespace quilt::kernels::attention
