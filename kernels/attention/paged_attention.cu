// Paged causal attention: one block per (query token, KV head, partition), the block's positions
// walked in chunks of kChunk with an online softmax.
//
// Per chunk: (1) each thread takes one position, loads its K row once and scores it against every
// query head of the group (q staged in shared memory as float); (2) a warp per head takes the
// chunk's max, turns scores into exp(s - m) and sums them, updating the running max m, sum l and
// the factor alpha that rescales earlier chunks; (3) each thread owns up to kMaxAcc (head, dim)
// outputs and adds Σ p · V over the chunk (a V row is read coalesced across threads). Three
// barriers a chunk. Without a split the output is acc / l; with one, each block writes its m, l
// and acc, and merge_kernel combines the partitions:
// M = max m, out = Σ e^(m - M) acc / Σ e^(m - M) l.
#include "kernels/attention/paged_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::attention {
namespace {

using detail::kWarpSize;
using detail::from_float;
using detail::to_float;

constexpr int kThreads = 128;
constexpr int kChunk = kAttentionChunk;  // positions scored per pass: one per thread
static_assert(kChunk == kThreads);
constexpr int kMaxAcc = kMaxGroupWidth / kThreads;
constexpr int kMergeThreads = 128;

// Shared memory, in floats: q [group * head_dim], scores [group][kChunk], m, l, alpha [group].
inline size_t shared_floats(int group, int head_dim) {
  return static_cast<size_t>(group) * head_dim + static_cast<size_t>(group) * kChunk + 3 * group;
}

template <typename T>
__global__ void paged_attention_kernel(const __grid_constant__ PagedAttentionParams<T> p) {
  const int64_t t = blockIdx.x;
  const int kvh = blockIdx.y;
  const int part = blockIdx.z;
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
  // Positions [first, visible) are this query's: causal, and inside the window if there is one.
  const int visible = seq.ctx_len - seq.q_len + static_cast<int>(t - seq.q_start) + 1;
  const int first = p.sliding_window > 0 ? max(0, visible - p.sliding_window) : 0;
  int lo = first, hi = visible;
  if (p.num_partitions > 1) {
    // This query's pieces: at least partition_size long, and long enough that num_partitions of
    // them cover its span whatever the span (a captured graph replays the plan at any length).
    const int per_part = (visible - first + p.num_partitions - 1) / p.num_partitions;
    const int size = max(p.partition_size, (per_part + kChunk - 1) / kChunk * kChunk);
    lo = min(visible, first + part * size);
    hi = min(visible, lo + size);
    if (lo == hi) {  // nothing here (a short context): l = 0, which the merge skips, acc unread
      for (int g = tid; g < group; g += kThreads) {
        float* ml = p.partial_ml +
                    ((t * p.num_heads + static_cast<int64_t>(kvh) * group + g) *
                         p.num_partitions + part) * 2;
        ml[0] = -INFINITY;
        ml[1] = 0.f;
      }
      return;  // the whole block: lo and hi are the same for every thread
    }
  }
  const int32_t* blocks = p.block_tables + seq.block_offset;
  const int64_t kv_dim = static_cast<int64_t>(p.num_kv_heads) * hd;
  const int64_t head_base = static_cast<int64_t>(kvh) * group * hd;
  const int64_t row_base = t * p.num_heads * hd + head_base;
  const float inv_cap = p.softcap > 0.f ? 1.0f / p.softcap : 0.f;

  for (int i = tid; i < width; i += kThreads) q_s[i] = to_float(p.q[t * p.q_stride + head_base + i]);
  for (int g = tid; g < group; g += kThreads) {
    m[g] = -INFINITY;
    l[g] = 0.f;
  }
  float acc[kMaxAcc];
  for (int a = 0; a < kMaxAcc; ++a) acc[a] = 0.f;
  __syncthreads();

  for (int base = lo; base < hi; base += kChunk) {
    const int n = min(kChunk, hi - base);
    if (tid < n) {  // (1) score one position against every head of the group
      const int pos = base + tid;
      const int64_t slot =
          static_cast<int64_t>(blocks[pos / p.block_size]) * p.block_size + pos % p.block_size;
      const T* k = p.k_cache + slot * kv_dim + static_cast<int64_t>(kvh) * hd;
      for (int g = 0; g < group; ++g) {
        const float* q = q_s + g * hd;
        float dot = 0.f;
        for (int d = 0; d < hd; ++d) dot += q[d] * to_float(k[d]);
        const float s = dot * p.scale;
        scores[g * kChunk + tid] = p.softcap > 0.f ? p.softcap * tanhf(s * inv_cap) : s;
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

  if (p.num_partitions == 1) {
    for (int a = 0; a < kMaxAcc; ++a) {
      const int i = tid + a * kThreads;
      if (i >= width) break;
      p.out[row_base + i] = from_float<T>(acc[a] / l[i / hd]);
    }
    return;
  }
  // A partial result: (m, l) per head and the unnormalized acc.
  const int64_t head0 = t * p.num_heads + static_cast<int64_t>(kvh) * group;
  for (int a = 0; a < kMaxAcc; ++a) {
    const int i = tid + a * kThreads;
    if (i >= width) break;
    const int g = i / hd, d = i % hd;
    p.partial_acc[((head0 + g) * p.num_partitions + part) * hd + d] = acc[a];
  }
  for (int g = tid; g < group; g += kThreads) {
    float* ml = p.partial_ml + ((head0 + g) * p.num_partitions + part) * 2;
    ml[0] = m[g];
    ml[1] = l[g];
  }
}

// One block per (query token, head): combines that head's partitions.
template <typename T>
__global__ void merge_kernel(const __grid_constant__ PagedAttentionParams<T> p) {
  const int64_t head = static_cast<int64_t>(blockIdx.x) * p.num_heads + blockIdx.y;
  const float* ml = p.partial_ml + head * p.num_partitions * 2;
  float m_max = -INFINITY;
  for (int z = 0; z < p.num_partitions; ++z) m_max = fmaxf(m_max, ml[2 * z]);
  float denom = 0.f;
  for (int z = 0; z < p.num_partitions; ++z) {
    if (ml[2 * z + 1] > 0.f) denom += expf(ml[2 * z] - m_max) * ml[2 * z + 1];
  }
  const float* acc = p.partial_acc + head * p.num_partitions * p.head_dim;
  T* out = p.out + head * p.head_dim;
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float sum = 0.f;
    for (int z = 0; z < p.num_partitions; ++z) {
      if (ml[2 * z + 1] > 0.f) sum += expf(ml[2 * z] - m_max) * acc[z * p.head_dim + d];
    }
    out[d] = from_float<T>(sum / denom);
  }
}

}  // namespace

SplitPlan plan_split(int32_t max_span, int64_t num_tokens, int32_t num_heads, int32_t head_dim,
                     int64_t max_workspace_floats) {
  SplitPlan plan;
  if (max_span <= kSplitMinSpan || num_tokens <= 0 || num_heads <= 0 || head_dim <= 0) return plan;
  const int64_t per_partition = num_tokens * num_heads * (static_cast<int64_t>(head_dim) + 2);
  const int64_t fit = max_workspace_floats / per_partition;
  const int64_t wanted = (static_cast<int64_t>(max_span) + kMinPartition - 1) / kMinPartition;
  const int64_t parts = std::min<int64_t>({wanted, kMaxPartitions, fit});
  if (parts <= 1) return plan;
  int64_t size = (max_span + parts - 1) / parts;
  size = (size + kChunk - 1) / kChunk * kChunk;
  plan.partition_size = static_cast<int32_t>(size);
  plan.num_partitions = static_cast<int32_t>((max_span + size - 1) / size);
  plan.workspace_floats = per_partition * plan.num_partitions;
  return plan;
}

SplitPlan plan_split_any_span(int64_t num_tokens, int32_t num_kv_heads, int32_t num_heads,
                              int32_t head_dim, int64_t max_workspace_floats) {
  SplitPlan plan;
  if (num_tokens <= 0 || num_kv_heads <= 0 || num_heads <= 0 || head_dim <= 0) return plan;
  const int64_t per_partition = num_tokens * num_heads * (static_cast<int64_t>(head_dim) + 2);
  const int64_t blocks = num_tokens * num_kv_heads;
  const int64_t parts = std::min<int64_t>({(kGraphTargetBlocks + blocks - 1) / blocks,
                                           kMaxGraphPartitions,
                                           max_workspace_floats / per_partition});
  if (parts <= 1) return plan;
  plan.num_partitions = static_cast<int32_t>(parts);
  plan.partition_size = kMinPartition;
  plan.workspace_floats = per_partition * parts;
  return plan;
}

template <typename T>
cudaError_t paged_attention_cuda(const PagedAttentionParams<T>& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_tokens > 0x7fffffff || p.num_kv_heads <= 0 || p.num_heads <= 0 ||
      p.q_stride < static_cast<int64_t>(p.num_heads) * p.head_dim ||
      p.num_heads % p.num_kv_heads != 0 || p.head_dim <= 0 || p.block_size <= 0 ||
      p.num_kv_heads > 65535 || !(p.scale > 0.f) || !std::isfinite(p.scale) ||
      !(p.softcap >= 0.f) || !std::isfinite(p.softcap) || p.sliding_window < 0 ||
      p.num_partitions < 1 || p.num_partitions > kMaxPartitions || p.num_heads > 65535) {
    return cudaErrorInvalidValue;
  }
  if (p.num_partitions > 1 &&
      (p.partition_size <= 0 || p.partition_size % kChunk != 0 || p.partial_acc == nullptr ||
       p.partial_ml == nullptr)) {
    return cudaErrorInvalidValue;
  }
  const int group = p.num_heads / p.num_kv_heads;
  if (group * p.head_dim > kMaxGroupWidth) return cudaErrorInvalidValue;
  if (p.num_tokens == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_kv_heads),
                  static_cast<unsigned>(p.num_partitions));
  const cudaError_t e = launch_kernel<&paged_attention_kernel<T>>(
      LaunchConfig{grid, dim3(kThreads), shared_floats(group, p.head_dim) * sizeof(float), stream},
      p);
  if (e != cudaSuccess || p.num_partitions == 1) return e;
  const dim3 merge_grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_heads));
  return launch_kernel<&merge_kernel<T>>(
      LaunchConfig{merge_grid, dim3(detail::threads_for(p.head_dim, kMergeThreads)), 0, stream}, p);
}

template cudaError_t paged_attention_cuda<__nv_bfloat16>(const PagedAttentionParams<__nv_bfloat16>&,
                                                         cudaStream_t);
template cudaError_t paged_attention_cuda<__half>(const PagedAttentionParams<__half>&,
                                                  cudaStream_t);

}  // namespace quilt::kernels::attention
