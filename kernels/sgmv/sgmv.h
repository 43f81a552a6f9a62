// The LoRA operator contract shared by the CPU reference and the CUDA kernels.
//
// For each token t whose adapter slot s = token_slot[t] is not -1 and each targeted (layer, proj):
//   shrink: v[t, j]  = Σ_k x[t, k] · A_s[j, k]            j < rank(s, layer, proj)   (float32)
//   expand: y[t, n] += scale(s, layer, proj) · Σ_j v[t, j] · Bᵀ_s[j, n]
// SGMV walks segments of tokens that share a slot (prefill); BGMV reads one slot per token (decode).
// Both produce the same numbers; the engine picks by batch shape.
//
// Adapter weights live in a pool of fixed-size pages, not contiguously: row j of A (length in_dim)
// or of Bᵀ (length out_dim) occupies pages_per_row = ceil(dim / page_elems) pages, whose indices are
// listed in `page_indices` starting at a_pages + j * pages_per_row (resp. bt_pages). Element k of the
// row is pool[page_indices[...+ k / page_elems] * page_elems + k % page_elems]. Ranks differ per
// slot and per (layer, proj) and are mixed freely in one call: nothing is padded to the largest.
#pragma once

#include <cstdint>

namespace quilt::kernels::sgmv {

// Where one adapter's A and Bᵀ for one (layer, proj) are. rank == 0: the adapter does not touch it.
struct LoraModuleRef {
  int32_t rank;
  float scale;
  int32_t a_pages;   // offset into page_indices of A's first row
  int32_t bt_pages;  // offset into page_indices of Bᵀ's first row
};

// The resident adapters, built when an adapter is loaded, not per step.
template <typename T>
struct PagedLoraWeights {
  const T* pool;                  // [num_pages, page_elems]
  int64_t page_elems;
  const int32_t* page_indices;    // see above
  const LoraModuleRef* modules;   // [num_slots, num_layers, num_projs]
  int32_t num_layers;
  int32_t num_projs;

  const LoraModuleRef& module(int32_t slot, int32_t layer, int32_t proj) const {
    return modules[(static_cast<int64_t>(slot) * num_layers + layer) * num_projs + proj];
  }
};

// One step's adapter layout, built once per step and reused by every layer.
struct LoraBatch {
  int32_t num_tokens;
  const int32_t* token_slots;    // [num_tokens], -1 = no adapter (BGMV view)
  int32_t num_segments;
  const int32_t* segment_starts; // [num_segments + 1] (SGMV view; tokens are sorted by slot)
  const int32_t* segment_slots;  // [num_segments], -1 = no adapter
  int32_t max_rank;              // largest rank of any slot in this batch: the width of v
};

// Shrink for up to kMaxFusedProjs projections that read the same x (q, k, v fused; gate, up fused).
inline constexpr int kMaxFusedProjs = 3;

struct ShrinkArgs {
  const float* x;                   // [num_tokens, in_dim]
  int64_t in_dim;
  int32_t layer;
  int32_t num_projs;
  int32_t projs[kMaxFusedProjs];
  float* v[kMaxFusedProjs];         // each [num_tokens, max_rank]; columns ≥ rank are left untouched
};

struct ExpandArgs {
  const float* v;                   // [num_tokens, max_rank]
  float* y;                         // [num_tokens, out_dim], accumulated into
  int64_t out_dim;
  int32_t layer;
  int32_t proj;
};

// CPU reference (float32 pool). Tokens without an adapter, or whose module has rank 0, are skipped.
void shrink_cpu(const PagedLoraWeights<float>& w, const LoraBatch& batch, const ShrinkArgs& args);
void expand_cpu(const PagedLoraWeights<float>& w, const LoraBatch& batch, const ExpandArgs& args);

}  // namespace quilt::kernels::sgmv
