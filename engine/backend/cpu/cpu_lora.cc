// CpuBackend's LoRA ops grouped by adapter: for each segment of the step's tokens that share an
// adapter slot, shrink is one GEMM [n × in]·Aᵀ with the A's of the fused projections stacked
// (q, k, v: one call) and expand one GEMM [n × r]·Bᵀ per projection, on dense host copies of the
// adapter's matrices gathered from the paged pool at first use (dropped whenever pages or tables
// are written). kernels/sgmv/sgmv_cpu.cc stays the contract's reference; the results agree with it
// to float rounding (the sums run in the BLAS's order).
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "engine/backend/cpu/cpu_backend.h"

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
  d.w.resize(static_cast<int64_t>(m.rank) * out_dim);
  if (m.rank > 0) gather_matrix(lora_weights(), m.bt_pages, m.rank, out_dim, d.w.data());
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
  for_each_segment(batch, [&](int32_t t0, int32_t t1, int32_t slot) {
    if (slot < 0) return;
    const DenseLora& a = dense_a(slot, layer, projs, in_dim);
    if (a.rows == 0) return;
    const int64_t n = t1 - t0;
    lora_scratch_.resize(n * a.rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n),
                static_cast<int>(a.rows), static_cast<int>(in_dim), 1.0f,
                x.as<float>() + t0 * x.stride(), static_cast<int>(x.stride()), a.w.data(),
                static_cast<int>(in_dim), 0.0f, lora_scratch_.data(), static_cast<int>(a.rows));
    for (size_t p = 0; p < projs.size(); ++p) {
      const int64_t rank = std::min<int64_t>(
          lora_weights().module(slot, layer, projs[p]).rank, max_rank);
      for (int64_t t = 0; t < n; ++t) {
        std::memcpy(v[p].as<float>() + (t0 + t) * max_rank,
                    lora_scratch_.data() + t * a.rows + a.offsets[p], rank * sizeof(float));
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
  for (size_t i = 0; i < slices.size(); ++i) {
    const ProjectionSlice& s = slices[i];
    for_each_segment(batch, [&](int32_t t0, int32_t t1, int32_t slot) {
      if (slot < 0) return;
      const kernels::sgmv::LoraModuleRef& m = lora_weights().module(slot, layer, s.proj);
      const int64_t rank = std::min<int64_t>(m.rank, max_rank);
      if (rank <= 0) return;
      const DenseLora& bt = dense_bt(slot, layer, s.proj, s.cols);
      // y[t, col:col+cols] += scale · v[t, :rank] · Bᵀ[:rank, :]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(t1 - t0),
                  static_cast<int>(s.cols), static_cast<int>(rank), m.scale,
                  v[i].as<float>() + t0 * max_rank, static_cast<int>(max_rank), bt.w.data(),
                  static_cast<int>(s.cols), 1.0f, y.as<float>() + t0 * y.cols + s.col,
                  static_cast<int>(y.cols));
    });
  }
  return Status::OK();
}

}  // namespace quilt::engine
