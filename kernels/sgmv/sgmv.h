// The LoRA operator contract shared by the CPU reference and the CUDA kernels.
//
// For each token t whose adapter slot s = token_slot[t] is not -1 and each targeted (layer, proj):
//   shrink: v[t, j]  = Σ_k x[t, k] · A_s[j, k]            j < rank(s, layer, proj)   (float32)
//   expand: y[t, n] += scale(s, layer, proj) · Σ_j v[t, j] · Bᵀ_s[j, n]
// SGMV walks segments of tokens that share a slot (prefill); BGMV reads one slot per token
// (decode). Both produce the same numbers; the engine picks by batch shape.
//
// Adapter weights live in a pool of fixed-size pages, not contiguously. Each matrix (A: rank ×
// in_dim, Bᵀ: rank × out_dim, both row-major) is stored FLAT across its own page list: element
// (j, k) has flat index f = j * dim + k and lives at
//   pool[page_indices[first + f / page_elems] * page_elems + f % page_elems]
// where first is a_pages (resp. bt_pages). A matrix takes ceil(rank * dim / page_elems) pages and
// only its last page has a tail: narrow GQA k/v outputs (dim = hidden / 4, say) pack four rows to a
// page instead of wasting three quarters of one per row. Rows may straddle pages. Ranks differ per
// slot and per (layer, proj) and are mixed freely in one call: nothing is padded to the largest.
//
// SGMV segments tile the batch: segment_starts[0] == 0, non-decreasing, and
// segment_starts[num_segments] == num_tokens (the step layout builder makes them so).
#pragma once

#include <cstdint>

namespace quilt::kernels::sgmv {

// Where one adapter's A and Bᵀ for one (layer, proj) are. rank == 0: the adapter does not touch it.
struct LoraModuleRef {
  int32_t rank;
  float scale;
  int32_t a_pages;   // offset into page_indices of A's first page
  int32_t bt_pages;  // offset into page_indices of Bᵀ's first page
};

// The resident adapters, built when an adapter is loaded, not per step.
template <typename T>
struct PagedLoraWeights {
  const T* pool;  // [num_pages, page_elems]
  int64_t page_elems;
  const int32_t* page_indices;   // see above
  const LoraModuleRef* modules;  // [num_slots, num_layers, num_projs]
  int32_t num_layers;
  int32_t num_projs;

  const LoraModuleRef& module(int32_t slot, int32_t layer, int32_t proj) const {
    return modules[(static_cast<int64_t>(slot) * num_layers + layer) * num_projs + proj];
  }
};

// One step's adapter layout, built once per step and reused by every layer.
struct LoraBatch {
  int32_t num_tokens;
  const int32_t* token_slots;  // [num_tokens], -1 = no adapter (BGMV view)
  int32_t num_segments;
  const int32_t* segment_starts;  // [num_segments + 1] (SGMV view; tokens are sorted by slot)
  const int32_t* segment_slots;   // [num_segments], -1 = no adapter
  int32_t max_rank;               // largest rank of any slot in this batch: the width of v
};

// Shrink for up to kMaxFusedProjs projections that read the same x (q, k, v fused; gate, up fused).
inline constexpr int kMaxFusedProjs = 3;

struct ShrinkArgs {
  const float* x;  // [num_tokens, in_dim]
  int64_t in_dim;
  int32_t layer;
  int32_t num_projs;
  int32_t projs[kMaxFusedProjs];
  float* v[kMaxFusedProjs];  // each [num_tokens, max_rank], fully written: 0 past the
                             // module's rank and for tokens without an adapter
};

struct ExpandArgs {
  const float* v;  // [num_tokens, max_rank]
  float* y;        // [num_tokens, y_row_stride], columns [0, out_dim) accumulated into
  int64_t out_dim;
  int32_t layer;
  int32_t proj;
  int64_t y_row_stride = 0;  // 0: out_dim; more when y is a slice of a wider (fused) row
};

// Pages a matrix of `rows` rows of `dim` elements takes in the flat layout above.
inline int64_t pages_for_matrix(int64_t rows, int64_t dim, int64_t page_elems) {
  return (rows * dim + page_elems - 1) / page_elems;
}

// CPU reference (float32 pool). Expand skips tokens without an adapter or whose module has rank 0
// (their y rows are untouched). Sums run k-ascending (shrink) and j-ascending (expand), the order
// the CPU engine's token-exact conformance with Hugging Face relies on.
void shrink_cpu(const PagedLoraWeights<float>& w, const LoraBatch& batch, const ShrinkArgs& args);
void expand_cpu(const PagedLoraWeights<float>& w, const LoraBatch& batch, const ExpandArgs& args);

}  // namespace quilt::kernels::sgmv
