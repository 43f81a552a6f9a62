// CpuBackend's LoRA ops grouped by adapter: for each segment of the step's tokens that share an
// adapter slot, shrink is one GEMM [n × in]·Aᵀ with the A's of the fused projections stacked
// (q, k, v: one call, cpu::gemm) and expand a vectorized sum of the rank rows of Bᵀ into each
// output row (simd.h; K = rank is too short for a GEMM's dot products), on dense host copies of the adapter's matrices gathered from the paged pool at first use (dropped whenever
// pages or tables are written). In prefill-sized batches the segments (cut to at most
// kRowsPerTask tokens) run in parallel on cpu::pool(), each task's GEMM on its own thread. kernels/sgmv/sgmv_cpu.cc stays the contract's
// reference; the results agree with it to float rounding.
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/gemm.h"
#include "engine/backend/cpu/simd.h"
#include "engine/backend/cpu/thread_pool.h"

namespace quilt::engine {
namespace {

// Copies rows [0, rows) of a `dim`-wide matrix stored flat from page list offset `first` (sgmv.h).
void gather_matrix(const kernels::sgmv::PagedLoraWeights<float>& w, int32_t first, int64_t rows,
                   int64_t dim, float* dst) {
  const int32_t* pages = w.page_indices + first;
  for (int64_t f = 0; f < rows * dim;) {
    const int64_t off = f % w.page_elems;
    const int64_t n = std::min(w.page_elems - off, rows * dim - f);
    std::memcpy(dst + f, w.pool + static_cast<int64_t>(pages[f / w.page_elems]) * w.page_elems + off,
                n * sizeof(float));
    f += n;
  }
}

// Calls f(token_begin, token_end, slot) for each run of tokens sharing a slot (sgmv_cpu.cc's walk).
template <typename F>
void for_each_segment(const kernels::sgmv::LoraBatch& b, F f) {
  if (b.num_segments > 0) {
    for (int32_t s = 0; s < b.num_segments; ++s) {
      f(b.segment_starts[s], b.segment_starts[s + 1], b.segment_slots[s]);
    }
    return;
  }
  for (int32_t t0 = 0; t0 < b.num_tokens;) {
    int32_t t1 = t0 + 1;
    while (t1 < b.num_tokens && b.token_slots[t1] == b.token_slots[t0]) ++t1;
    f(t0, t1, b.token_slots[t0]);
    t0 = t1;
  }
}

constexpr int32_t kRowsPerTask = 16;  // tokens of one segment per parallel task
// Below this many tokens a call runs on the calling thread: a decode step's LoRA GEMMs are a few
// microseconds each, less than handing them to the pool costs (measured: 8 adapters x 2 tokens,
// 30 layers, 24 ms a step serial, 84 ms on the pool of 2 on a loaded machine).
constexpr int32_t kMinTokensToThread = 64;

// fn(begin, end) over the runs: on the pool for prefill-sized batches, else serially.
void for_runs(int64_t runs, int32_t num_tokens, const std::function<void(int64_t, int64_t)>& fn) {
  if (num_tokens < kMinTokensToThread) {
    fn(0, runs);
  } else {
    cpu::pool().parallel_for(runs, 1, fn);
  }
}

struct Run {
  int32_t t0, t1, slot;
};

// The batch's adapter runs (slot >= 0), long segments cut into kRowsPerTask-token pieces.
std::vector<Run> lora_runs(const kernels::sgmv::LoraBatch& b) {
  std::vector<Run> runs;
  for_each_segment(b, [&](int32_t t0, int32_t t1, int32_t slot) {
    if (slot < 0) return;
    for (int32_t t = t0; t < t1; t += kRowsPerTask) runs.push_back({t, std::min(t1, t + kRowsPerTask), slot});
  });
  return runs;
}

// y[t, :n] += Σ_j (v[t, j] · scale) · bt[j, :n] for t < rows, j ascending as the SGMV reference
// sums; W output columns at a time held in a register across j (a GEMM with K = rank would reduce
// across lanes per output instead).
template <int W>
QUILT_SIMD_INLINE void expand_rows_impl(const float* v, int64_t v_stride, int64_t rows,
                                        int64_t rank, float scale, const float* bt, int64_t n,
                                        float* y, int64_t y_stride) {
  using V = cpu::Vec<W>;
  for (int64_t t = 0; t < rows; ++t) {
    float* yr = y + t * y_stride;
    const float* vr = v + t * v_stride;
    int64_t c = 0;
    for (; c + W <= n; c += W) {
      V acc;
      cpu::load<W>(acc, yr + c);
      for (int64_t j = 0; j < rank; ++j) {
        V b;
        cpu::load<W>(b, bt + j * n + c);
        acc += (vr[j] * scale) * b;
      }
      __builtin_memcpy(yr + c, &acc, sizeof(acc));
    }
    for (; c < n; ++c) {
      for (int64_t j = 0; j < rank; ++j) yr[c] += (vr[j] * scale) * bt[j * n + c];
    }
  }
}
QUILT_SIMD_DISPATCH(expand_rows)

uint64_t lora_key(int32_t slot, int32_t layer, uint32_t what) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(slot)) << 40) |
         (static_cast<uint64_t>(static_cast<uint32_t>(layer)) << 16) | what;
}

}  // namespace

const CpuBackend::DenseLora& CpuBackend::dense_a(int32_t slot, int32_t layer,
                                                  std::span<const int32_t> projs, int64_t in_dim) {
  uint32_t what = 0;  // the projections in order, 4 bits each, 1-based; bit 15 marks "A"
  for (int32_t p : projs) what = (what << 4) | static_cast<uint32_t>(p + 1);
  auto [it, added] = lora_dense_.try_emplace(lora_key(slot, layer, what | 0x8000u));
  DenseLora& d = it->second;
  if (!added) return d;
  const auto w = lora_weights();
  int64_t rows = 0;
  for (int32_t p : projs) rows += w.module(slot, layer, p).rank;
  d.w.resize(rows * in_dim);
  for (size_t i = 0; i < projs.size(); ++i) {
    const kernels::sgmv::LoraModuleRef& m = w.module(slot, layer, projs[i]);
    d.offsets[i] = d.rows;
    if (m.rank > 0) gather_matrix(w, m.a_pages, m.rank, in_dim, d.w.data() + d.rows * in_dim);
    d.rows += m.rank;
  }
  return d;
}

const CpuBackend::DenseLora& CpuBackend::dense_bt(int32_t slot, int32_t layer, int32_t proj,
                                                   int64_t out_dim) {
  auto [it, added] = lora_dense_.try_emplace(lora_key(slot, layer, static_cast<uint32_t>(proj + 1)));
  DenseLora& d = it->second;
  if (!added) return d;
  const kernels::sgmv::LoraModuleRef& m = lora_weights().module(slot, layer, proj);
  d.rows = m.rank;
  if (m.rank <= 0) return d;
  d.w.resize(static_cast<size_t>(m.rank) * out_dim);
  gather_matrix(lora_weights(), m.bt_pages, m.rank, out_dim, d.w.data());
  return d;
}

Status CpuBackend::lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                               std::span<Tensor> v) {
  if (projs.size() > kernels::sgmv::kMaxFusedProjs || v.size() != projs.size()) {
    return Status::Internal("cpu backend: bad fused lora shrink");
  }
  for (int32_t p : projs) {
    if (p < 0 || p >= 7) return Status::Internal("cpu backend: lora projection out of range");
  }
  const kernels::sgmv::LoraBatch batch = lora_batch();
  const int64_t max_rank = batch.max_rank;
  const int64_t in_dim = x.cols;
  for (Tensor& t : v) std::fill_n(t.as<float>(), batch.num_tokens * max_rank, 0.f);
  if (max_rank <= 0) return Status::OK();
  const std::vector<Run> runs = lora_runs(batch);
  std::vector<const DenseLora*> a(runs.size());  // built here: the parallel part only reads
  for (size_t i = 0; i < runs.size(); ++i) a[i] = &dense_a(runs[i].slot, layer, projs, in_dim);
  const auto w = lora_weights();
  for_runs(static_cast<int64_t>(runs.size()), batch.num_tokens, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> out;
    for (int64_t i = begin; i < end; ++i) {
      const Run& r = runs[i];
      const DenseLora& d = *a[i];
      if (d.rows == 0) continue;
      const int64_t n = r.t1 - r.t0;
      out.resize(n * d.rows);
      cpu::gemm_f32_serial(n, d.rows, in_dim, x.as<float>() + r.t0 * x.stride(), x.stride(),
                           d.w.data(), in_dim, out.data(), d.rows, 0.0f);
      for (size_t p = 0; p < projs.size(); ++p) {
        const int64_t rank = std::min<int64_t>(w.module(r.slot, layer, projs[p]).rank, max_rank);
        for (int64_t t = 0; t < n; ++t) {
          std::memcpy(v[p].as<float>() + (r.t0 + t) * max_rank, out.data() + t * d.rows + d.offsets[p],
                      rank * sizeof(float));
        }
      }
    }
  });
  return Status::OK();
}

Status CpuBackend::lora_expand(std::span<const Tensor> v, int32_t layer,
                               std::span<const ProjectionSlice> slices, Tensor& y) {
  if (slices.size() > kernels::sgmv::kMaxFusedProjs || v.size() != slices.size() ||
      !y.contiguous()) {
    return Status::Internal("cpu backend: bad fused lora expand");
  }
  for (const ProjectionSlice& s : slices) {
    if (s.col < 0 || s.cols <= 0 || s.col + s.cols > y.cols) {
      return Status::Internal("cpu backend: lora expand slice outside the output row");
    }
    if (s.proj < 0 || s.proj >= 7) return Status::Internal("cpu backend: lora projection out of range");
  }
  const kernels::sgmv::LoraBatch batch = lora_batch();
  const int64_t max_rank = batch.max_rank;
  if (max_rank <= 0) return Status::OK();
  const std::vector<Run> runs = lora_runs(batch);
  const size_t np = slices.size();
  std::vector<const DenseLora*> b(runs.size() * np);  // built here: the parallel part only reads
  for (size_t i = 0; i < runs.size(); ++i) {
    for (size_t p = 0; p < np; ++p) b[i * np + p] = &dense_bt(runs[i].slot, layer, slices[p].proj, slices[p].cols);
  }
  const auto w = lora_weights();
  for_runs(static_cast<int64_t>(runs.size()), batch.num_tokens, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Run& r = runs[i];
      for (size_t p = 0; p < np; ++p) {
        const ProjectionSlice& s = slices[p];
        const kernels::sgmv::LoraModuleRef& m = w.module(r.slot, layer, s.proj);
        const int64_t rank = std::min<int64_t>(m.rank, max_rank);
        if (rank <= 0) continue;
        expand_rows(v[p].as<float>() + r.t0 * max_rank, max_rank, int64_t{r.t1 - r.t0}, rank, m.scale,
                    static_cast<const float*>(b[i * np + p]->w.data()), s.cols,
                    y.as<float>() + r.t0 * y.cols + s.col, y.cols);
      }
    }
  });
  return Status::OK();
}

}  // namespace quilt::engine
