// Sampling: one block per logit row. Argmax and log-sum-exp by block reductions; a candidate order
// (top-k, top-p) by a bitonic sort of (logit, id) keys in global scratch; the sequential part (the
// double total, the top-p cut, the walk to the draw) on thread 0, in the CPU sampler's order.
#include "kernels/sampling/sampling.h"

#include <cmath>

#include "kernels/common/device_math.cuh"
#include "kernels/common/launch.h"

namespace quilt::kernels::sampling {
namespace {

using detail::kWarpSize;

constexpr int kThreads = 256;

// a before b: the higher logit, ties to the lower id (the CPU sampler's order; torch.argmax's).
__device__ __forceinline__ bool before(float a, int32_t ia, float b, int32_t ib) {
  return a > b || (a == b && ia < ib);
}

// The block's best (value, id) among what each thread offers; every thread gets it.
__device__ void block_best(float& v, int32_t& id, float* sv, int32_t* si) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, id, offset);
    if (before(ov, oi, v, id)) {
      v = ov;
      id = oi;
    }
  }
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = id;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / kWarpSize; ++w) {
      if (before(sv[w], si[w], sv[0], si[0])) {
        sv[0] = sv[w];
        si[0] = si[w];
      }
    }
  }
  __syncthreads();
  v = sv[0];
  id = si[0];
  __syncthreads();  // sv, si free for the next call
}

// Ascending keys put the higher logit first, ties by lower id: the order of `before`.
__device__ __forceinline__ uint64_t order_key(float v, int32_t id) {
  uint32_t bits = __float_as_uint(v);
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);  // ascending with v
  return (static_cast<uint64_t>(~bits) << 32) | static_cast<uint32_t>(id);
}

__global__ void sample_kernel(const __grid_constant__ SampleParams p) {
  __shared__ float sv[kThreads / kWarpSize];
  __shared__ int32_t si[kThreads / kWarpSize];
  __shared__ double partial[kThreads];
  __shared__ int32_t chosen[kMaxTopLogprobs];
  __shared__ int32_t token_s;
  const int r = blockIdx.x, tid = threadIdx.x;
  const SampleRow row = p.rows[r];
  const float* logits = p.logits + static_cast<int64_t>(r) * p.vocab;
  const int32_t vocab = p.vocab;

  float best = -INFINITY;
  int32_t best_id = vocab;
  for (int32_t i = tid; i < vocab; i += kThreads) {
    if (before(logits[i], i, best, best_id)) {
      best = logits[i];
      best_id = i;
    }
  }
  block_best(best, best_id, sv, si);

  if (row.temperature <= 0.f) {
    if (tid == 0) token_s = best_id;
  } else {
    const bool limit_k = row.top_k > 0 && row.top_k < vocab;
    const bool sorted = limit_k || row.top_p < 1.f;
    int32_t keep = limit_k ? row.top_k : vocab;
    uint64_t* keys = p.keys + static_cast<int64_t>(r) * p.sort_len;
    if (sorted) {
      for (int32_t i = tid; i < p.sort_len; i += kThreads) {
        keys[i] = i < vocab ? order_key(logits[i], i) : ~uint64_t{0};  // padding sorts last
      }
      __syncthreads();
      for (int32_t k = 2; k <= p.sort_len; k <<= 1) {
        for (int32_t j = k >> 1; j > 0; j >>= 1) {
          for (int32_t i = tid; i < p.sort_len; i += kThreads) {
            const int32_t partner = i ^ j;
            if (partner > i) {
              const uint64_t a = keys[i], b = keys[partner];
              if ((a > b) == ((i & k) == 0)) {
                keys[i] = b;
                keys[partner] = a;
              }
            }
          }
          __syncthreads();
        }
      }
    }
    auto order = [&](int32_t i) {
      return sorted ? static_cast<int32_t>(keys[i] & 0xffffffffu) : i;
    };
    float* probs = p.probs + static_cast<int64_t>(r) * p.vocab;
    const float inv_t = 1.f / row.temperature;
    const float top = best * inv_t;
    for (int32_t i = tid; i < keep; i += kThreads) {
      // exp in double then rounded: the float the CPU's std::exp gives, but for a last-bit tie.
      probs[i] = static_cast<float>(exp(static_cast<double>(logits[order(i)] * inv_t - top)));
    }
    __syncthreads();
    if (tid == 0) {
      double total = 0;
      for (int32_t i = 0; i < keep; ++i) total += probs[i];
      if (row.top_p < 1.f) {
        double cum = 0;
        int32_t n = 0;
        while (n < keep) {
          cum += probs[n++] / total;
          if (cum >= row.top_p) break;
        }
        keep = n;
        total = 0;
        for (int32_t i = 0; i < keep; ++i) total += probs[i];
      }
      const double u = row.uniform * (total - 0.0) + 0.0;  // uniform_real_distribution(0, total)
      double cum = 0;
      int32_t token = order(keep - 1);
      for (int32_t i = 0; i < keep; ++i) {
        cum += probs[i];
        if (u < cum) {
          token = order(i);
          break;
        }
      }
      token_s = token;
    }
  }
  __syncthreads();
  const int32_t token = token_s;
  if (tid == 0) p.tokens[r] = token;
  if (row.logprobs <= 0) return;

  double s = 0;
  for (int32_t i = tid; i < vocab; i += kThreads) s += exp(static_cast<double>(logits[i] - best));
  partial[tid] = s;
  __syncthreads();
  if (tid == 0) {
    double total = 0;
    for (int t = 0; t < kThreads; ++t) total += partial[t];
    partial[0] = total;
  }
  __syncthreads();
  const float lse = best + static_cast<float>(log(partial[0]));
  if (tid == 0) p.logprobs[r] = logits[token] - lse;
  const int n = min(min(row.logprobs, vocab), kMaxTopLogprobs);
  for (int c = 0; c < n; ++c) {  // the next best id not taken yet
    float v = -INFINITY;
    int32_t id = vocab;
    for (int32_t i = tid; i < vocab; i += kThreads) {
      bool taken = false;
      for (int q = 0; q < c; ++q) taken = taken || chosen[q] == i;
      if (!taken && before(logits[i], i, v, id)) {
        v = logits[i];
        id = i;
      }
    }
    block_best(v, id, sv, si);
    if (tid == 0) {
      chosen[c] = id;
      p.top_ids[r * kMaxTopLogprobs + c] = id;
      p.top_logprobs[r * kMaxTopLogprobs + c] = v - lse;
    }
    __syncthreads();
  }
}

__global__ void adjust_logits_kernel(float* logits, int64_t row_stride,
                                     const LogitAdjust* entries, int32_t count) {
  const int32_t i = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= count) return;
  const LogitAdjust e = entries[i];
  logits[e.row * row_stride + e.id] += e.delta;
}

}  // namespace

cudaError_t adjust_logits_cuda(float* logits, int64_t row_stride, const LogitAdjust* entries,
                               int32_t count, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((count + kThreads - 1) / kThreads);
  return launch_kernel<&adjust_logits_kernel>(LaunchConfig{dim3(blocks), dim3(kThreads), 0, stream},
                                              logits, row_stride, entries, count);
}

cudaError_t sample_cuda(const SampleParams& p, cudaStream_t stream) {
  if (p.num_rows < 0 || p.vocab <= 0 || p.sort_len < p.vocab) return cudaErrorInvalidValue;
  if (p.num_rows == 0) return cudaSuccess;
  return launch_kernel<&sample_kernel>(
      LaunchConfig{dim3(static_cast<unsigned>(p.num_rows)), dim3(kThreads), 0, stream}, p);
}

}  // namespace quilt::kernels::sampling
