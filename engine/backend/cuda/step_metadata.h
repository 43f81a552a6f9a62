// One step's layout packed into a single int32 array, so that begin_step uploads it in one copy;
// the offsets say where each part starts (in int32s). Pure host code.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "engine/backend/step_layout.h"

namespace quilt::engine::cuda {

struct StepOffsets {
  int64_t token_ids = 0;       // [num_tokens]
  int64_t positions = 0;       // [num_tokens]
  int64_t kv_slots = 0;        // [num_tokens]
  int64_t token_seq = 0;       // [num_tokens]: index of each token's sequence
  int64_t seqs = 0;            // [num_seqs] kernels::attention::AttentionSeq (4 int32s each)
  int64_t logit_rows = 0;      // [logit_rows.size()]
  int64_t token_slots = 0;     // [num_tokens]
  int64_t segment_starts = 0;  // [num_segments + 1]
  int64_t segment_slots = 0;   // [num_segments]
  int64_t block_tables = 0;    // [block_tables.size()], last (decode_graphs.h)
  int64_t total = 0;
};

// Packs `layout` into `out` (resized) and returns the offsets. Checks what the kernels rely on and
// cannot check themselves: sequences tile the tokens, every visible position has a block, slots
// and rows are in range (num_slots = num_blocks * block_size of the cache).
Result<StepOffsets> pack_step(const StepLayout& layout, int64_t num_cache_slots, int32_t block_size,
                              std::vector<int32_t>& out);

}  // namespace quilt::engine::cuda
