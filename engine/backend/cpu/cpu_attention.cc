// CpuBackend::attention: causal attention over the paged KV cache, threaded on cpu::pool() over
// (sequence, KV head, block of query rows), vectorized over head_dim. The query heads of a GQA
// group are computed together, so each K and V row is read once per group and query row.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/simd.h"
#include "engine/backend/cpu/thread_pool.h"

namespace quilt::engine {
namespace {

constexpr int64_t kRowsPerTask = 4;  // query rows of one sequence per task (prefill chunks)
constexpr int64_t kMaxGroup = 8;     // query heads per pass; larger GQA groups take several

struct AttnTask {
  int32_t seq;
  int32_t kv_head;
  int32_t row0;  // first query row of the task, within the sequence
  int32_t rows;
};

struct AttnArgs {
  const StepLayout* step;
  const float* q;
  int64_t q_stride;
  float* out;
  int64_t out_stride;
  const float* kc;
  const float* vc;
  int64_t kv_dim, hd, group, bs;
  float scale, cap;
  int64_t window;
};

// The task's scratch: K/V row pointers of the sequence and scores per head of a pass.
struct AttnScratch {
  std::vector<const float*> k_rows, v_rows;
  std::vector<float> scores;
};

// o[0, HD) = Σ_p (x[p] · inv) · rows[p][0, HD), the sum in 2 · HD / W vector registers. Explicit
// vectors (simd.h's Vec): as a plain loop nest the compiler interchanges the loops and runs the
// p sum in scalar code.
template <int W, int HD>
QUILT_SIMD_INLINE void accumulate_rows(const float* x, float inv, const float* const* rows,
                                       int64_t n, float* o) {
  using V = cpu::Vec<W>;
  constexpr int kVecs = HD / W;
  static_assert(HD % W == 0);
  // Two independent sets of accumulators (even and odd p) hide the FMA latency.
  V acc[kVecs], acc2[kVecs];
  for (int c = 0; c < kVecs; ++c) acc[c] = acc2[c] = V{};
  int64_t p = 0;
  for (; p + 2 <= n; p += 2) {
    const float w0 = x[p] * inv, w1 = x[p + 1] * inv;
    const float* v0 = rows[p];
    const float* v1 = rows[p + 1];
    for (int c = 0; c < kVecs; ++c) {
      V a, b;
      cpu::load<W>(a, v0 + c * W);
      cpu::load<W>(b, v1 + c * W);
      acc[c] += w0 * a;
      acc2[c] += w1 * b;
    }
  }
  if (p < n) {
    const float w0 = x[p] * inv;
    for (int c = 0; c < kVecs; ++c) {
      V a;
      cpu::load<W>(a, rows[p] + c * W);
      acc[c] += w0 * a;
    }
  }
  for (int c = 0; c < kVecs; ++c) acc[c] += acc2[c];
  std::memcpy(o, acc, sizeof(acc));
}

// One task; HD > 0: head_dim known at compile time (64, 128: the output row of a head stays in
// registers), 0: a->hd at run time.
template <int W, int HD>
QUILT_SIMD_INLINE void attend_task(const AttnArgs* a, const AttnTask* t, AttnScratch* s) {
  const StepLayout::Sequence& seq = a->step->sequences[t->seq];
  const int32_t* blocks = a->step->block_tables.data() + seq.block_offset;
  const int64_t hd = HD > 0 ? HD : a->hd;
  const int64_t last_visible = seq.ctx_len - seq.q_len + t->row0 + t->rows;
  s->k_rows.resize(last_visible);
  s->v_rows.resize(last_visible);
  for (int64_t p = 0; p < last_visible; ++p) {
    const int64_t off = (blocks[p / a->bs] * a->bs + p % a->bs) * a->kv_dim + t->kv_head * hd;
    s->k_rows[p] = a->kc + off;
    s->v_rows[p] = a->vc + off;
  }
  s->scores.resize(kMaxGroup * last_visible);
  for (int32_t i = t->row0; i < t->row0 + t->rows; ++i) {
    const int64_t row = seq.q_start + i;
    const int64_t visible = seq.ctx_len - seq.q_len + i + 1;  // causal: itself and before
    // Sliding window: the query at position visible - 1 sees p with (visible - 1) - p < window.
    const int64_t first = a->window > 0 ? std::max<int64_t>(0, visible - a->window) : 0;
    const int64_t n = visible - first;
    const float* const* k_rows = s->k_rows.data() + first;
    const float* const* v_rows = s->v_rows.data() + first;
    for (int64_t g0 = 0; g0 < a->group; g0 += kMaxGroup) {
      const int64_t heads = std::min(kMaxGroup, a->group - g0);
      const int64_t h0 = t->kv_head * a->group + g0;
      const float* qh[kMaxGroup];
      float* sc[kMaxGroup];
      for (int64_t g = 0; g < heads; ++g) {
        qh[g] = a->q + row * a->q_stride + (h0 + g) * hd;
        sc[g] = s->scores.data() + g * last_visible;
      }
      // Scores of every head of the pass, each K row read once.
      for (int64_t p = 0; p < n; ++p) {
        const float* kp = k_rows[p];
        for (int64_t g = 0; g < heads; ++g) sc[g][p] = cpu::dot<W>(qh[g], kp, hd) * a->scale;
      }
      for (int64_t g = 0; g < heads; ++g) {
        float* x = sc[g];
        if (a->cap > 0) {
          for (int64_t p = 0; p < n; ++p) x[p] = a->cap * std::tanh(x[p] / a->cap);
        }
        const float max_score = cpu::max_of<W>(x, n);
        for (int64_t p = 0; p < n; ++p) x[p] = cpu::exp_approx(x[p] - max_score);
        const float inv = 1.0f / cpu::sum_of<W>(x, n);
        // o = Σ_p (x[p] / Σ x) · V[p]
        float* o = a->out + row * a->out_stride + (h0 + g) * hd;
        if constexpr (HD > 0) {
          accumulate_rows<W, HD>(x, inv, v_rows, n, o);
        } else {
          for (int64_t d = 0; d < hd; ++d) o[d] = 0.f;
          for (int64_t p = 0; p < n; ++p) {
            const float w = x[p] * inv;
            const float* vp = v_rows[p];
            for (int64_t d = 0; d < hd; ++d) o[d] += w * vp[d];
          }
        }
      }
    }
  }
}

template <int W>
QUILT_SIMD_INLINE void attend_impl(const AttnArgs* a, const AttnTask* t, AttnScratch* s) {
  if (a->hd == 64) return attend_task<W, 64>(a, t, s);
  if (a->hd == 128) return attend_task<W, 128>(a, t, s);
  attend_task<W, 0>(a, t, s);
}

QUILT_SIMD_DISPATCH(attend)

}  // namespace

Status CpuBackend::attention(int32_t layer, const Tensor& q, int64_t num_heads,
                             const AttentionParams& params, Tensor& out) {
  const int64_t hd = kv_shape_.head_dim;
  const int64_t kv_heads = kv_shape_.num_kv_heads;
  if (params.scale < 0 || params.softcap < 0 || params.sliding_window < 0) {
    return Status::Internal("cpu backend: negative attention parameter");
  }
  if (kv_heads <= 0 || num_heads % kv_heads != 0 || q.cols < num_heads * hd ||
      out.cols < num_heads * hd) {
    return Status::Internal("cpu backend: attention heads do not match the KV cache");
  }
  AttnArgs args{};
  args.step = step_;
  args.q = q.as<float>();
  args.q_stride = q.stride();
  args.out = out.as<float>();
  args.out_stride = out.cols;
  args.kc = k_cache(layer);
  args.vc = v_cache(layer);
  args.kv_dim = kv_heads * hd;
  args.hd = hd;
  args.group = num_heads / kv_heads;
  args.bs = kv_shape_.block_size;
  args.scale = params.scale > 0 ? params.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  args.cap = params.softcap;
  args.window = params.sliding_window;

  std::vector<AttnTask> tasks;
  for (size_t si = 0; si < step_->sequences.size(); ++si) {
    const StepLayout::Sequence& seq = step_->sequences[si];
    for (int32_t kvh = 0; kvh < kv_heads; ++kvh) {
      for (int32_t r = 0; r < seq.q_len; r += kRowsPerTask) {
        const int32_t rows = static_cast<int32_t>(std::min<int64_t>(kRowsPerTask, seq.q_len - r));
        tasks.push_back({static_cast<int32_t>(si), kvh, r, rows});
      }
    }
  }
  cpu::pool().parallel_for(static_cast<int64_t>(tasks.size()), 1,
                           [&](int64_t begin, int64_t end) {
                             thread_local AttnScratch scratch;
                             for (int64_t i = begin; i < end; ++i) {
                               attend(&args, &tasks[i], &scratch);
                             }
                           });
  return Status::OK();
}

}  // namespace quilt::engine
