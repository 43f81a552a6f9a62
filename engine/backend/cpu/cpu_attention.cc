// CpuBackend::attention: causal attention over the paged KV cache, threaded on cpu::pool() over
// (sequence, KV head, block of query rows), vectorized over head_dim. The query heads of a GQA
// group are computed together, so each K and V row is read once per group and query row.
#include <algorithm>
#include <cmath>
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

template <int W>
QUILT_SIMD_INLINE void attend_impl(const AttnArgs* a, const AttnTask* t, AttnScratch* s) {
  const StepLayout::Sequence& seq = a->step->sequences[t->seq];
  const int32_t* blocks = a->step->block_tables.data() + seq.block_offset;
  const int64_t hd = a->hd;
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
    for (int64_t g0 = 0; g0 < a->group; g0 += kMaxGroup) {
      const int64_t heads = std::min(kMaxGroup, a->group - g0);
      const int64_t h0 = t->kv_head * a->group + g0;
      const float* qh[kMaxGroup];
      float* sc[kMaxGroup];
      for (int64_t g = 0; g < heads; ++g) {
        qh[g] = a->q + row * a->q_stride + (h0 + g) * hd;
        sc[g] = s->scores.data() + g * last_visible;
      }
      for (int64_t p = 0; p < n; ++p) {
        const float* kp = s->k_rows[first + p];
        for (int64_t g = 0; g < heads; ++g) sc[g][p] = cpu::dot<W>(qh[g], kp, hd) * a->scale;
      }
      for (int64_t g = 0; g < heads; ++g) {
        float* x = sc[g];
        if (a->cap > 0) {
          for (int64_t p = 0; p < n; ++p) x[p] = a->cap * std::tanh(x[p] / a->cap);
        }
        float max_score = x[0];
        for (int64_t p = 1; p < n; ++p) max_score = std::max(max_score, x[p]);
        float denom = 0.f;
        for (int64_t p = 0; p < n; ++p) {
          x[p] = cpu::exp_approx(x[p] - max_score);
          denom += x[p];
        }
        const float inv = 1.0f / denom;
        for (int64_t p = 0; p < n; ++p) x[p] *= inv;
        float* o = a->out + row * a->out_stride + (h0 + g) * hd;
        std::fill(o, o + hd, 0.f);
      }
      for (int64_t p = 0; p < n; ++p) {
        const float* vp = s->v_rows[first + p];
        for (int64_t g = 0; g < heads; ++g) {
          float* o = a->out + row * a->out_stride + (h0 + g) * hd;
          const float w = sc[g][p];
          for (int64_t d = 0; d < hd; ++d) o[d] += w * vp[d];
        }
      }
    }
  }
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
