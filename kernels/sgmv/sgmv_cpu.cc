// CPU reference of the LoRA shrink/expand contract in sgmv.h: plain loops, float32.
#include "kernels/sgmv/sgmv.h"

#include <algorithm>

namespace quilt::kernels::sgmv {
namespace {

// Row `row` of a matrix of rows `dim` long stored flat from page list offset `first` (sgmv.h).
// Calls f(k_begin, pointer, count) for each page-contiguous run of the row, k ascending.
template <typename F>
void for_each_run(const PagedLoraWeights<float>& w, int32_t first, int32_t row, int64_t dim, F f) {
  const int32_t* pages = w.page_indices + first;
  const int64_t f0 = static_cast<int64_t>(row) * dim;
  for (int64_t k0 = 0; k0 < dim;) {
    const int64_t flat = f0 + k0;
    const int64_t off = flat % w.page_elems;
    const int64_t n = std::min(w.page_elems - off, dim - k0);
    f(k0, w.pool + static_cast<int64_t>(pages[flat / w.page_elems]) * w.page_elems + off, n);
    k0 += n;
  }
}

// Calls f(token_begin, token_end, slot) for each run of tokens sharing a slot.
template <typename F>
void for_each_segment(const LoraBatch& b, F f) {
  if (b.num_segments > 0) {
    for (int32_t s = 0; s < b.num_segments; ++s) {
      f(b.segment_starts[s], b.segment_starts[s + 1], b.segment_slots[s]);
    }
    return;
  }
  for (int32_t t = 0; t < b.num_tokens; ++t) f(t, t + 1, b.token_slots[t]);
}

}  // namespace

void shrink_cpu(const PagedLoraWeights<float>& w, const LoraBatch& batch, const ShrinkArgs& args) {
  for (int32_t p = 0; p < args.num_projs; ++p) {
    std::fill_n(args.v[p], static_cast<int64_t>(batch.num_tokens) * batch.max_rank, 0.f);
  }
  for_each_segment(batch, [&](int32_t t0, int32_t t1, int32_t slot) {
    if (slot < 0) return;
    for (int32_t p = 0; p < args.num_projs; ++p) {
      const LoraModuleRef& m = w.module(slot, args.layer, args.projs[p]);
      const int32_t rank = std::min(m.rank, batch.max_rank);
      for (int32_t j = 0; j < rank; ++j) {
        for (int32_t t = t0; t < t1; ++t) {
          const float* x = args.x + static_cast<int64_t>(t) * args.in_dim;
          float acc = 0.f;
          for_each_run(w, m.a_pages, j, args.in_dim, [&](int64_t k0, const float* a, int64_t n) {
            for (int64_t k = 0; k < n; ++k) acc += x[k0 + k] * a[k];
          });
          args.v[p][static_cast<int64_t>(t) * batch.max_rank + j] = acc;
        }
      }
    }
  });
}

void expand_cpu(const PagedLoraWeights<float>& w, const LoraBatch& batch, const ExpandArgs& args) {
  const int64_t stride = args.y_row_stride > 0 ? args.y_row_stride : args.out_dim;
  for_each_segment(batch, [&](int32_t t0, int32_t t1, int32_t slot) {
    if (slot < 0) return;
    const LoraModuleRef& m = w.module(slot, args.layer, args.proj);
    for (int32_t t = t0; t < t1; ++t) {
      const float* v = args.v + static_cast<int64_t>(t) * batch.max_rank;
      float* y = args.y + static_cast<int64_t>(t) * stride;
      for (int32_t j = 0; j < std::min(m.rank, batch.max_rank); ++j) {
        const float vj = v[j] * m.scale;
        for_each_run(w, m.bt_pages, j, args.out_dim, [&](int64_t n0, const float* bt, int64_t n) {
          for (int64_t i = 0; i < n; ++i) y[n0 + i] += vj * bt[i];
        });
      }
    }
  });
}

}  // namespace quilt::kernels::sgmv
