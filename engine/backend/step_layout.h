// One engine step's batch layout: built once on the host, read by every layer's ops.
#pragma once

#include <cstdint>
#include <vector>

namespace quilt::engine {

// Sequences are laid out back to back, grouped by adapter slot so that LoRA segments are contiguous.
struct StepLayout {
  struct Sequence {
    int32_t q_start = 0;        // first row of this sequence's tokens in the step
    int32_t q_len = 0;          // tokens computed this step (a prefill chunk or one decode token)
    int32_t ctx_len = 0;        // tokens in the KV cache once this step has written its own
    int32_t block_offset = 0;   // into block_tables
    int32_t num_blocks = 0;
  };

  std::vector<int32_t> token_ids;     // [num_tokens]
  std::vector<int32_t> positions;     // [num_tokens]
  std::vector<int32_t> kv_slots;      // [num_tokens]: block * block_size + offset where K/V go
  std::vector<Sequence> sequences;
  std::vector<int32_t> block_tables;  // each sequence's KV block ids, concatenated
  std::vector<int32_t> logit_rows;    // rows whose next-token logits are wanted, in order

  // LoRA (kernels/sgmv contract): -1 = no adapter.
  std::vector<int32_t> token_slots;     // [num_tokens]
  std::vector<int32_t> segment_starts;  // [num_segments + 1]
  std::vector<int32_t> segment_slots;   // [num_segments]
  int32_t max_rank = 0;                 // 0: no token of this step uses an adapter

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
};

}  // namespace quilt::engine
