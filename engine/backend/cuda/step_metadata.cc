// pack_step: the step's int32 arrays back to back, with the per-token sequence index derived.
#include "engine/backend/cuda/step_metadata.h"

#include <algorithm>
#include <string>

#include "kernels/attention/paged_attention.h"

namespace quilt::engine::cuda {
namespace {

constexpr int64_t kSeqInts = sizeof(kernels::attention::AttentionSeq) / sizeof(int32_t);
static_assert(kSeqInts * sizeof(int32_t) == sizeof(kernels::attention::AttentionSeq));

Status bad(const std::string& what) {
  return Status::Internal("cuda backend: step layout: " + what);
}

}  // namespace

Result<StepOffsets> pack_step(const StepLayout& l, int64_t num_cache_slots, int32_t block_size,
                              std::vector<int32_t>& out) {
  const int64_t n = l.num_tokens();
  if (l.positions.size() != static_cast<size_t>(n) || l.kv_slots.size() != static_cast<size_t>(n)) {
    return bad("positions and kv_slots must have one entry per token");
  }
  const bool lora = !l.token_slots.empty();
  if (lora && l.token_slots.size() != static_cast<size_t>(n)) return bad("token_slots size");
  if (!l.segment_starts.empty() && l.segment_starts.size() != l.segment_slots.size() + 1) {
    return bad("segment_starts must have one entry more than segment_slots");
  }

  StepOffsets o;
  int64_t at = 0;
  auto take = [&](int64_t count) {
    const int64_t start = at;
    at += count;
    return start;
  };
  o.token_ids = take(n);
  o.positions = take(n);
  o.kv_slots = take(n);
  o.token_seq = take(n);
  o.seqs = take(static_cast<int64_t>(l.sequences.size()) * kSeqInts);
  o.logit_rows = take(static_cast<int64_t>(l.logit_rows.size()));
  o.token_slots = take(static_cast<int64_t>(l.token_slots.size()));
  o.segment_starts = take(static_cast<int64_t>(l.segment_starts.size()));
  o.segment_slots = take(static_cast<int64_t>(l.segment_slots.size()));
  // Last: the only part whose length varies between decode steps of one batch size, so that
  // every other offset stays put for a captured graph (decode_graphs.h).
  o.block_tables = take(static_cast<int64_t>(l.block_tables.size()));
  o.total = at;
  out.assign(static_cast<size_t>(at), -1);

  auto copy = [&](const std::vector<int32_t>& src, int64_t offset) {
    std::copy(src.begin(), src.end(), out.begin() + offset);
  };
  copy(l.token_ids, o.token_ids);
  copy(l.positions, o.positions);
  copy(l.kv_slots, o.kv_slots);
  copy(l.block_tables, o.block_tables);
  copy(l.logit_rows, o.logit_rows);
  copy(l.token_slots, o.token_slots);
  copy(l.segment_starts, o.segment_starts);
  copy(l.segment_slots, o.segment_slots);

  for (int64_t t = 0; t < n; ++t) {
    if (l.kv_slots[t] < 0 || l.kv_slots[t] >= num_cache_slots) return bad("kv slot out of range");
  }
  for (int32_t r : l.logit_rows) {
    if (r < 0 || r >= n) return bad("logit row out of range");
  }
  for (size_t s = 0; s < l.sequences.size(); ++s) {
    const StepLayout::Sequence& seq = l.sequences[s];
    if (seq.q_len < 0 || seq.q_start < 0 || seq.q_start + seq.q_len > n ||
        seq.ctx_len < seq.q_len) {
      return bad("sequence " + std::to_string(s) + " does not fit the step");
    }
    const int64_t blocks_needed = (seq.ctx_len + block_size - 1) / block_size;
    if (blocks_needed > seq.num_blocks || seq.block_offset < 0 ||
        seq.block_offset + static_cast<int64_t>(seq.num_blocks) >
            static_cast<int64_t>(l.block_tables.size())) {
      return bad("sequence " + std::to_string(s) + " has too few KV blocks for its context");
    }
    for (int32_t b = 0; b < seq.num_blocks; ++b) {
      const int64_t block = l.block_tables[seq.block_offset + b];
      if (block < 0 || (block + 1) * block_size > num_cache_slots)
        return bad("KV block out of range");
    }
    for (int32_t i = 0; i < seq.q_len; ++i) {
      int32_t& owner = out[o.token_seq + seq.q_start + i];
      if (owner != -1) return bad("two sequences claim token " + std::to_string(seq.q_start + i));
      owner = static_cast<int32_t>(s);
    }
    int32_t* packed = out.data() + o.seqs + static_cast<int64_t>(s) * kSeqInts;
    packed[0] = seq.q_start;
    packed[1] = seq.q_len;
    packed[2] = seq.ctx_len;
    packed[3] = seq.block_offset;
  }
  for (int64_t t = 0; t < n; ++t) {
    if (out[o.token_seq + t] == -1) return bad("token " + std::to_string(t) + " has no sequence");
  }
  return o;
}

}  // namespace quilt::engine::cuda
