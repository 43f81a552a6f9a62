// LoraLoader: the pinned ring, the copy stream and the events that order adapter loads.
#include "engine/backend/cuda/lora_loader.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>

namespace quilt::engine::cuda {
namespace {

// 16-bit bits of `n` floats, converted as the pool's dtype stores them.
void convert(const float* src, size_t n, DType dtype, uint16_t* dst) {
  if (dtype == DType::kF16) {
    for (size_t i = 0; i < n; ++i) {
      const __half h = __float2half_rn(src[i]);
      std::memcpy(&dst[i], &h, sizeof(h));
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const __nv_bfloat16 b = __float2bfloat16_rn(src[i]);
      std::memcpy(&dst[i], &b, sizeof(b));
    }
  }
}

}  // namespace

Result<std::unique_ptr<LoraLoader>> LoraLoader::create(void* pool, int32_t num_pages,
                                                       int64_t page_elems, DType dtype,
                                                       cudaStream_t compute, size_t ring_bytes) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) {
    return Status::Internal("lora loader: pool dtype must be 16-bit");
  }
  std::unique_ptr<LoraLoader> l(new LoraLoader());
  l->pool_ = static_cast<uint16_t*>(pool);
  l->num_pages_ = num_pages;
  l->page_elems_ = page_elems;
  l->dtype_ = dtype;
  l->compute_ = compute;
  const size_t page_bytes = static_cast<size_t>(page_elems) * sizeof(uint16_t);
  QUILT_RETURN_IF_ERROR(l->copy_stream_.create());
  QUILT_RETURN_IF_ERROR(l->compute_mark_.create());
  QUILT_RETURN_IF_ERROR(l->ring_.reserve(std::max(ring_bytes, 4 * page_bytes)));
  return l;
}

LoraLoader::~LoraLoader() {
  // The ring (freed after this body) must not be read by a copy still queued.
  while (!in_flight_.empty()) {
    if (!reclaim_front(/*wait=*/true).ok()) break;
  }
}

Result<std::unique_ptr<Event>> LoraLoader::take_event() {
  if (!spare_events_.empty()) {
    std::unique_ptr<Event> e = std::move(spare_events_.back());
    spare_events_.pop_back();
    return e;
  }
  auto e = std::make_unique<Event>();
  QUILT_RETURN_IF_ERROR(e->create());
  return e;
}

// Regions are taken in ring order and freed oldest first, so the free space is the part between
// the newest region's end (head_) and the oldest region's start, possibly wrapping.
bool LoraLoader::fits(size_t bytes, size_t* at) const {
  const size_t cap = ring_.bytes();
  if (in_flight_.empty()) {
    *at = 0;
    return bytes <= cap;
  }
  const size_t tail = in_flight_.front().begin;
  if (head_ == tail) return false;  // full: the newest region ends where the oldest begins
  if (head_ > tail) {               // free: [head_, cap) and [0, tail)
    if (head_ + bytes <= cap) {
      *at = head_;
      return true;
    }
    *at = 0;
    return bytes <= tail;
  }
  *at = head_;  // wrapped: free is [head_, tail)
  return head_ + bytes <= tail;
}

Status LoraLoader::reclaim_front(bool wait) {
  Region& r = in_flight_.front();
  if (wait) {
    ++stats_.staging_waits;
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaEventSynchronize(r.done->get())));
  } else {
    const cudaError_t q = cudaEventQuery(r.done->get());
    if (q == cudaErrorNotReady) return Status::Unavailable("copy in flight");
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(q));
  }
  // Its copies completed: a load whose last copy this was needs no stream wait any more.
  const cudaEvent_t ev = r.done->get();
  std::erase_if(pending_, [ev](const auto& kv) { return kv.second == ev; });
  spare_events_.push_back(std::move(r.done));
  in_flight_.pop_front();
  if (in_flight_.empty()) head_ = 0;
  return Status::OK();
}

Result<size_t> LoraLoader::reserve(size_t bytes) {
  if (bytes > ring_.bytes()) return Status::Internal("lora loader: staging larger than the ring");
  // Completed regions first, without waiting; then the oldest copies, waiting.
  while (!in_flight_.empty()) {
    size_t at = 0;
    if (fits(bytes, &at)) return at;
    Status s = reclaim_front(/*wait=*/false);
    if (s.code() == StatusCode::kUnavailable) break;
    QUILT_RETURN_IF_ERROR(s);
  }
  for (;;) {
    size_t at = 0;
    if (fits(bytes, &at)) return at;
    QUILT_RETURN_IF_ERROR(reclaim_front(/*wait=*/true));
  }
}

Result<void*> LoraLoader::stage(size_t bytes) {
  if (staged_) return Status::Internal("lora loader: stage() twice without commit_staged()");
  QUILT_ASSIGN_OR_RETURN(size_t at, reserve(bytes));
  staged_ = Region{at, bytes, nullptr};
  return static_cast<char*>(ring_.data()) + at;
}

Status LoraLoader::commit_staged(cudaStream_t stream) {
  if (!staged_) return Status::Internal("lora loader: commit_staged() without stage()");
  Region r = std::move(*staged_);
  staged_.reset();
  QUILT_ASSIGN_OR_RETURN(r.done, take_event());
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaEventRecord(r.done->get(), stream)));
  head_ = r.begin + r.bytes;
  in_flight_.push_back(std::move(r));
  return Status::OK();
}

Result<uint64_t> LoraLoader::start(std::span<const int32_t> pages, std::span<const float> data) {
  const size_t pe = static_cast<size_t>(page_elems_);
  if (data.size() != pages.size() * pe) {
    return Status::Internal("lora loader: page data does not fill its pages");
  }
  for (int32_t p : pages) {
    if (p < 0 || p >= num_pages_) return Status::Internal("lora loader: page index out of range");
  }
  // Pages may have held an evicted adapter that a step already enqueued still reads: the copies
  // start after the compute stream's work so far (between steps the stream is idle, so this
  // costs no overlap).
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaEventRecord(compute_mark_.get(), compute_)));
  QUILT_RETURN_IF_ERROR(
      QUILT_CUDA_STATUS(cudaStreamWaitEvent(copy_stream_.get(), compute_mark_.get(), 0)));

  // Chunks of at most half the ring, so one chunk converts while the one before it copies.
  const size_t page_bytes = pe * sizeof(uint16_t);
  const size_t chunk_pages = std::max<size_t>(1, ring_.bytes() / 2 / page_bytes);
  cudaEvent_t last = nullptr;
  for (size_t first = 0; first < pages.size(); first += chunk_pages) {
    const size_t n = std::min(chunk_pages, pages.size() - first);
    QUILT_ASSIGN_OR_RETURN(size_t at, reserve(n * page_bytes));
    uint16_t* staging = reinterpret_cast<uint16_t*>(static_cast<char*>(ring_.data()) + at);
    convert(data.data() + first * pe, n * pe, dtype_, staging);
    // One copy per run of consecutive page indices (the allocator hands out runs when it can).
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && pages[first + j] == pages[first + j - 1] + 1) ++j;
      uint16_t* dst = pool_ + static_cast<size_t>(pages[first + i]) * pe;
      QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(dst, staging + i * pe,
                                                              (j - i) * page_bytes,
                                                              cudaMemcpyHostToDevice,
                                                              copy_stream_.get())));
      ++stats_.copies;
      i = j;
    }
    Region r{at, n * page_bytes, nullptr};
    QUILT_ASSIGN_OR_RETURN(r.done, take_event());
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaEventRecord(r.done->get(), copy_stream_.get())));
    last = r.done->get();
    head_ = r.begin + r.bytes;
    in_flight_.push_back(std::move(r));
  }
  ++stats_.loads;
  const uint64_t id = next_id_++;
  // The copy stream runs in order: the last chunk's event covers the whole load.
  if (last != nullptr) pending_[id] = last;
  return id;
}

Status LoraLoader::finish(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return Status::OK();
  const cudaEvent_t ev = it->second;
  pending_.erase(it);
  return QUILT_CUDA_STATUS(cudaEventSynchronize(ev));
}

Status LoraLoader::wait(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return Status::OK();
  const cudaEvent_t ev = it->second;
  pending_.erase(it);
  ++stats_.stream_waits;
  return QUILT_CUDA_STATUS(cudaStreamWaitEvent(compute_, ev, 0));
}

}  // namespace quilt::engine::cuda
