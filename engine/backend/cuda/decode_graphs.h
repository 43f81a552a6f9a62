// Decode steps as CUDA graphs. A step whose every sequence computes one token is padded to the
// next batch size of 1, 2, 4, 8 ... kMaxGraphTokens and runs by replaying a graph of the model's
// forward pass, captured the first time that (padded size, LoRA rank) came up: one launch instead
// of a few hundred, so a small batch is no longer bound by the host's launch rate.
//
// Why a replay computes this step and not the captured one: every kernel of the forward pass
// reads the step's layout from device memory (the packed metadata of step_metadata.h: token ids,
// positions, KV slots, sequences, block tables, each token's adapter slot), and that metadata goes
// into one device buffer of fixed address before each replay, at offsets that depend on the padded
// size alone (the block tables, whose length varies, come last). What is baked into a graph is
// sizes only: the padded token count, the LoRA rank (v's width), the model's shapes. LoRA runs
// through the sgmv kernels' SGMV view with the segment count fixed at the padded size (the real
// runs of one adapter, then empty segments: the kernels find each tile from segment_starts on the
// device), so which adapters a step uses, in which order and grouping, varies freely, and the
// adapter tables and pages are read from device memory at replay.
//
// Padding rows: each copies a donor sequence that has a free slot after its current token in its
// current KV block: the pad token sits at the donor's next position, writes its K/V into that
// slot (unwritten, and never read before the donor's next step overwrites it), attends over the
// donor's context, uses no adapter; its logits are dropped.
//
// A decode step runs op by op instead (StepGraphStats::fallbacks) when its padded size is over
// kMaxGraphTokens, when it needs padding and no sequence has such a slot (every one at the end of
// a block), or when capturing its key failed once (never retried: an op that cannot be captured).
// Graphs are dropped (and captured again) when a buffer they read is reallocated: the KV cache,
// the adapter pool or its tables, RoPE's frequencies, or the metadata buffer itself.
//
// Not thread-safe: the engine thread drives it through CudaBackend::run_step.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cuda/cuda_handles.h"

namespace quilt::engine::cuda {

class CudaBackend;

inline constexpr int32_t kMaxGraphTokens = 256;

class DecodeGraphs {
 public:
  explicit DecodeGraphs(CudaBackend& backend) : backend_(backend) {}
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Runs `layout` (begin_step included) through a graph when it is a decode step that can use
  // one, capturing it on first sight; nullopt when the caller must run it op by op. The first
  // layout.logit_rows.size() rows of the result are the step's logits.
  Result<std::optional<Tensor>> run(const StepLayout& layout, const StepForward& forward);

  StepGraphStats stats() const { return stats_; }
  size_t num_graphs() const { return graphs_.size(); }

  // The padded size of a decode step of n tokens: the next power of two.
  static int32_t padded_size(int32_t n);

 private:
  using Key = std::pair<int32_t, int32_t>;  // padded tokens, LoRA max_rank
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    Tensor logits;  // what forward returned when captured: the activations it writes stay put
  };

  // Fills padded_ from a decode step's layout; false when padding is needed and no sequence has
  // a free slot for it.
  bool pad(const StepLayout& layout, int32_t size);
  // The addresses a graph reads besides the metadata; a change drops every graph.
  std::vector<const void*> baked_addresses() const;
  void clear();
  Result<std::optional<Tensor>> capture(const Key& key, const StepForward& forward, int32_t n);

  CudaBackend& backend_;
  std::map<Key, Graph> graphs_;
  std::set<Key> uncapturable_;
  StepLayout padded_;
  std::shared_ptr<DeviceMemory> meta_;  // the metadata of graph steps: its address is baked in
  std::vector<const void*> baked_;
  StepGraphStats stats_;
};

}  // namespace quilt::engine::cuda
