// Token sampling on the device: greedy, temperature, top-k, top-p and top-N log-probabilities for
// each logit row of a step, with the CPU sampler's exact rules (engine/sampling/sampler.cc):
// candidates ordered by logit descending then id ascending; probabilities exp(l/T - max/T) in
// float; their total, the top-p cut and the cumulative walk in double, sequentially in that order;
// the draw u = uniform · total, with `uniform` the sequence's canonical draw made on the host (so
// the per-request RNG stays where the CPU path keeps it). Greedy and the ids it returns are exact;
// a sampled id can differ from the CPU's only where exp's last bit differs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace quilt::kernels::sampling {

inline constexpr int kMaxTopLogprobs = 20;

// One row's request (mirrors engine::SampleSpec).
struct SampleRow {
  float temperature;  // ≤ 0: greedy
  float top_p;        // (0, 1]
  int32_t top_k;      // 0: off
  int32_t logprobs;   // top-N log-probabilities wanted, ≤ kMaxTopLogprobs
  double uniform;     // canonical draw in [0, 1), read when temperature > 0
};

struct SampleParams {
  const float* logits;    // [num_rows, vocab], float32
  const SampleRow* rows;  // [num_rows], device
  uint64_t* keys;         // [num_rows, sort_len] scratch: sort keys of rows that need an order
  float* probs;           // [num_rows, vocab] scratch
  int32_t* tokens;        // [num_rows] out
  float* logprobs;        // [num_rows] out: log-softmax of the raw logits at the token
  int32_t* top_ids;       // [num_rows, kMaxTopLogprobs] out: the first rows[r].logprobs written
  float* top_logprobs;    // [num_rows, kMaxTopLogprobs] out
  int32_t num_rows;
  int32_t vocab;
  int32_t sort_len;  // a power of two ≥ vocab
};

// The smallest power of two ≥ vocab: the key scratch's row length.
inline int32_t sort_length(int32_t vocab) {
  int32_t n = 1;
  while (n < vocab) n *= 2;
  return n;
}

// One block per row. Enqueues on `stream`; returns the launch's error. Thread-safe.
cudaError_t sample_cuda(const SampleParams& p, cudaStream_t stream);

// One logit adjustment (logit_bias and the presence/frequency penalties, folded on the host).
struct LogitAdjust {
  int32_t row;
  int32_t id;
  float delta;
};

// logits[row * row_stride + id] += delta for each of `count` entries (device memory, distinct
// (row, id) pairs), in place, before sample_cuda reads the rows. Enqueues on `stream`.
cudaError_t adjust_logits_cuda(float* logits, int64_t row_stride, const LogitAdjust* entries,
                               int32_t count, cudaStream_t stream);

}  // namespace quilt::kernels::sampling
