// DecodeGraphs: padding a decode step, capturing the forward pass once per key, replaying it.
#include "engine/backend/cuda/decode_graphs.h"

#include <algorithm>

#include "engine/backend/cuda/cuda_backend.h"

namespace quilt::engine::cuda {
namespace {

// Every sequence computes one token, token i is sequence i's, and every token's logits are
// wanted in token order: the steps a graph serves.
bool is_decode_step(const StepLayout& l) {
  const int32_t n = l.num_tokens();
  if (n == 0 || l.sequences.size() != static_cast<size_t>(n) ||
      l.logit_rows.size() != static_cast<size_t>(n)) {
    return false;
  }
  for (int32_t i = 0; i < n; ++i) {
    const StepLayout::Sequence& s = l.sequences[static_cast<size_t>(i)];
    if (s.q_len != 1 || s.q_start != i || l.logit_rows[static_cast<size_t>(i)] != i) return false;
  }
  return l.token_slots.empty() || l.token_slots.size() == static_cast<size_t>(n);
}

// The adapter slot of each token, from token_slots or, where only segments are given, from those.
void slots_per_token(const StepLayout& l, std::vector<int32_t>& out) {
  out.assign(static_cast<size_t>(l.num_tokens()), -1);
  if (!l.token_slots.empty()) {
    std::copy(l.token_slots.begin(), l.token_slots.end(), out.begin());
    return;
  }
  for (size_t s = 0; s < l.segment_slots.size() && s + 1 < l.segment_starts.size(); ++s) {
    for (int32_t t = l.segment_starts[s]; t < l.segment_starts[s + 1] && t < l.num_tokens(); ++t) {
      out[static_cast<size_t>(t)] = l.segment_slots[s];
    }
  }
}

}  // namespace

DecodeGraphs::~DecodeGraphs() { clear(); }

int32_t DecodeGraphs::padded_size(int32_t n) {
  int32_t size = 1;
  while (size < n) size *= 2;
  return size;
}

void DecodeGraphs::clear() {
  for (auto& [key, graph] : graphs_) QUILT_CUDA_CHECK(cudaGraphExecDestroy(graph.exec));
  graphs_.clear();
}

std::vector<const void*> DecodeGraphs::baked_addresses() const {
  const CudaBackend& b = backend_;
  auto at = [](const std::shared_ptr<DeviceMemory>& m) -> const void* {
    return m ? m->data() : nullptr;
  };
  return {at(b.kv_), at(b.lora_pool_), at(b.page_indices_), at(b.lora_modules_), at(b.inv_freq_)};
}

bool DecodeGraphs::pad(const StepLayout& l, int32_t size) {
  const int32_t n = l.num_tokens();
  const int32_t block_size = backend_.kv_shape_.block_size;
  int32_t donor = -1;
  if (size > n) {
    if (block_size <= 0) return false;
    for (int32_t i = 0; i < n && donor < 0; ++i) {
      if ((l.kv_slots[static_cast<size_t>(i)] + 1) % block_size != 0) donor = i;
    }
    if (donor < 0) return false;
  }
  StepLayout& p = padded_;
  p.token_ids.assign(l.token_ids.begin(), l.token_ids.end());
  p.positions.assign(l.positions.begin(), l.positions.end());
  p.kv_slots.assign(l.kv_slots.begin(), l.kv_slots.end());
  p.sequences.assign(l.sequences.begin(), l.sequences.end());
  p.block_tables.assign(l.block_tables.begin(), l.block_tables.end());
  p.logit_rows.resize(static_cast<size_t>(size));
  for (int32_t i = 0; i < size; ++i) p.logit_rows[static_cast<size_t>(i)] = i;
  p.max_rank = l.max_rank;
  p.token_slots.clear();
  p.segment_starts.clear();
  p.segment_slots.clear();
  if (l.max_rank > 0) slots_per_token(l, p.token_slots);
  for (int32_t i = n; i < size; ++i) {
    const size_t d = static_cast<size_t>(donor);
    p.token_ids.push_back(l.token_ids[d]);
    p.positions.push_back(l.positions[d] + 1);
    p.kv_slots.push_back(l.kv_slots[d] + 1);
    StepLayout::Sequence s = l.sequences[d];
    s.q_start = i;
    p.sequences.push_back(s);
    if (l.max_rank > 0) p.token_slots.push_back(-1);
  }
  if (l.max_rank > 0) {
    // SGMV segments, always `size` of them (a decode step has at most one per token): runs of
    // one slot (the padding rows one run of -1), then empty segments at the end. The kernels size
    // their grid by the segment count and find each tile on the device, so one graph serves any
    // grouping; a long run of one adapter still gets tensor-core tiles.
    for (int32_t t = 0; t < size; ++t) {
      const int32_t slot = p.token_slots[static_cast<size_t>(t)];
      if (t == 0 || slot != p.segment_slots.back()) {
        p.segment_starts.push_back(t);
        p.segment_slots.push_back(slot);
      }
    }
    while (static_cast<int32_t>(p.segment_slots.size()) < size) {
      p.segment_starts.push_back(size);
      p.segment_slots.push_back(-1);
    }
    p.segment_starts.push_back(size);
  }
  return true;
}

Result<std::optional<Tensor>> DecodeGraphs::run(const StepLayout& layout,
                                                const StepForward& forward) {
  if (!is_decode_step(layout)) return std::optional<Tensor>();
  const int32_t n = layout.num_tokens();
  const int32_t size = padded_size(n);
  const Key key{size, layout.max_rank};
  if (size > kMaxGraphTokens || uncapturable_.count(key) > 0 || !pad(layout, size)) {
    ++stats_.eager_decodes;
    ++stats_.fallbacks;
    return std::optional<Tensor>();
  }
  if (std::vector<const void*> now = baked_addresses(); now != baked_) {
    clear();
    baked_ = std::move(now);
  }
  // Room for the largest padded step with block tables as long as the whole cache, so that the
  // buffer (whose address every graph holds) is rarely, if ever, reallocated.
  const int64_t blocks = std::max<int64_t>(backend_.kv_shape_.num_blocks, 1024);
  const size_t min_bytes = static_cast<size_t>(12 * kMaxGraphTokens + 2 * blocks) * sizeof(int32_t);
  bool reallocated = false;
  QUILT_RETURN_IF_ERROR(backend_.begin_step_in(padded_, meta_, min_bytes, &reallocated));
  if (reallocated) clear();

  if (auto it = graphs_.find(key); it != graphs_.end()) {
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaGraphLaunch(it->second.exec, backend_.stream())));
    ++stats_.replays;
    return std::optional<Tensor>(it->second.logits.head(n));
  }
  return capture(key, forward, n);
}

// First sight of a key: the step runs op by op (its result is this step's), then the same forward
// pass is captured; capturing enqueues nothing, so the step's results stay as computed.
Result<std::optional<Tensor>> DecodeGraphs::capture(const Key& key, const StepForward& forward,
                                                    int32_t n) {
  ++stats_.eager_decodes;
  Result<Tensor> eager = forward(padded_);
  if (!eager.ok()) {
    // Not this step's fault, maybe: padding past the model's step size. Run it unpadded.
    uncapturable_.insert(key);
    return std::optional<Tensor>();
  }
  cudaStream_t stream = backend_.stream();
  bool captured = false;
  if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
    Result<Tensor> recorded = forward(padded_);
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    cudaGraphExec_t exec = nullptr;
    if (recorded.ok() && ended == cudaSuccess &&
        cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess) {
      graphs_[key] = Graph{exec, *recorded};
      ++stats_.captures;
      captured = true;
    }
    if (graph != nullptr) QUILT_CUDA_CHECK(cudaGraphDestroy(graph));
  }
  if (!captured) {
    (void)cudaGetLastError();  // a refused capture leaves no error behind for later ops
    uncapturable_.insert(key);
  }
  return std::optional<Tensor>(eager->head(n));
}

}  // namespace quilt::engine::cuda
