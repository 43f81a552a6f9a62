// LoraLoader: adapter pages host→device on a copy stream of their own, staged in a reusable
// pinned ring, so that loading an adapter overlaps the steps that do not use it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/backend/cuda/cuda_handles.h"

namespace quilt::engine::cuda {

// What the loader did, for tests and metrics.
struct LoraLoadStats {
  uint64_t loads = 0;         // start() calls
  uint64_t copies = 0;        // cudaMemcpyAsync calls: one per contiguous run of pages per chunk
  uint64_t stream_waits = 0;  // cudaStreamWaitEvent of the compute stream on a load
  uint64_t staging_waits = 0; // the host waited for a copy to reuse its staging (ring full)
};

// Not thread-safe: the engine thread drives it through CudaBackend.
//
// A load converts its float pages into the compute dtype straight into the pinned ring (no other
// host copy), then copies each run of consecutive page indices with one cudaMemcpyAsync on the
// copy stream and records an event after them. wait() makes the compute stream wait on that event
// (cudaStreamWaitEvent): the host never waits for a load. Ring space is reused only after the
// event of the copy that read it has completed; when the ring is full the host waits for the
// oldest copy (staging_waits), never for compute.
class LoraLoader {
 public:
  // `pool` is [num_pages, page_elems] of 16-bit elements (dtype kF16 or kBF16); `compute` is the
  // stream every op runs on. The ring holds at least four pages.
  static Result<std::unique_ptr<LoraLoader>> create(void* pool, int32_t num_pages,
                                                    int64_t page_elems, DType dtype,
                                                    cudaStream_t compute, size_t ring_bytes);
  ~LoraLoader();  // waits for the copies in flight: the ring they read is freed here
  LoraLoader(const LoraLoader&) = delete;
  LoraLoader& operator=(const LoraLoader&) = delete;

  // Starts copying data (pages.size() * page_elems floats) into those pool pages; returns the
  // load's id (never 0). `data` may be freed on return.
  Result<uint64_t> start(std::span<const int32_t> pages, std::span<const float> data);
  // The compute stream waits for load `id` (once; later calls and unknown ids do nothing).
  Status wait(uint64_t id);
  // The host waits for load `id` to complete: the synchronous reference path only.
  Status finish(uint64_t id);
  // Pinned space for a small upload the caller issues itself (the slot tables, on the compute
  // stream): write `bytes` at the returned pointer, enqueue the copy on `stream`, then
  // commit_staged(stream) records the event that frees the space. Nothing else may be staged or
  // started in between.
  Result<void*> stage(size_t bytes);
  Status commit_staged(cudaStream_t stream);

  const LoraLoadStats& stats() const { return stats_; }

 private:
  struct Region {  // a part of the ring a copy in flight reads
    size_t begin = 0;
    size_t bytes = 0;
    std::unique_ptr<Event> done;
  };

  LoraLoader() = default;
  // Space for `bytes` in the ring (bytes <= ring size), reclaiming completed regions and, when
  // still short, waiting for the oldest.
  Result<size_t> reserve(size_t bytes);
  bool fits(size_t bytes, size_t* at) const;
  Status reclaim_front(bool wait);
  Result<std::unique_ptr<Event>> take_event();

  // Constant after create().
  uint16_t* pool_ = nullptr;
  int32_t num_pages_ = 0;
  int64_t page_elems_ = 0;
  DType dtype_ = DType::kF16;
  cudaStream_t compute_ = nullptr;
  Stream copy_stream_;
  PinnedMemory ring_;
  Event compute_mark_;  // the copy stream waits on it: pages are rewritten only once freed

  size_t head_ = 0;              // where the next region starts
  std::deque<Region> in_flight_;  // oldest first
  std::optional<Region> staged_;  // reserved by stage(), not yet committed
  std::vector<std::unique_ptr<Event>> spare_events_;
  // Loads the compute stream has not waited for: id → the event after their last copy. The event
  // stays owned by its Region; an id whose region was reclaimed has completed and leaves here.
  std::unordered_map<uint64_t, cudaEvent_t> pending_;
  uint64_t next_id_ = 1;
  LoraLoadStats stats_;
};

}  // namespace quilt::engine::cuda
