// build_step_layout: tokens, positions, KV slots, block tables and LoRA segments of one step.
#include "engine/scheduler/layout_builder.h"

#include <algorithm>

namespace quilt::engine {

StepLayout build_step_layout(StepPlan& plan, int32_t block_size, const AdapterSlots& adapters) {
  std::stable_sort(plan.items.begin(), plan.items.end(), [](const auto& a, const auto& b) {
    return a.seq->adapter_slot < b.seq->adapter_slot;
  });
  StepLayout l;
  for (const StepPlan::Item& item : plan.items) {
    const Sequence& seq = *item.seq;
    StepLayout::Sequence s;
    s.q_start = l.num_tokens();
    s.q_len = item.count;
    s.ctx_len = seq.num_computed + item.count;
    s.block_offset = static_cast<int32_t>(l.block_tables.size());
    s.num_blocks = static_cast<int32_t>(seq.blocks.size());
    l.block_tables.insert(l.block_tables.end(), seq.blocks.begin(), seq.blocks.end());
    l.sequences.push_back(s);

    const int32_t slot = seq.adapter_slot;
    if (l.segment_slots.empty() || l.segment_slots.back() != slot) {
      l.segment_starts.push_back(s.q_start);
      l.segment_slots.push_back(slot);
    }
    if (slot >= 0) l.max_rank = std::max(l.max_rank, adapters.rank_of(slot));
    for (int32_t i = 0; i < item.count; ++i) {
      const int32_t pos = seq.num_computed + i;
      l.token_ids.push_back(seq.tokens[pos]);
      l.positions.push_back(pos);
      l.kv_slots.push_back(seq.blocks[pos / block_size] * block_size + pos % block_size);
      l.token_slots.push_back(slot);
    }
    if (item.samples) l.logit_rows.push_back(l.num_tokens() - 1);
  }
  l.segment_starts.push_back(l.num_tokens());
  // Prompt log-probabilities (requests that ask only) come after every sampling row, in item order.
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const auto [first, last] = prompt_logprob_positions(*plan.items[i].seq, plan.items[i].count);
    for (int32_t pos = first; pos < last; ++pos) {
      l.logit_rows.push_back(l.sequences[i].q_start + pos - plan.items[i].seq->num_computed);
    }
  }
  return l;
}

}  // namespace quilt::engine
