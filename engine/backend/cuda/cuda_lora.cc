// CudaBackend's LoRA: the page pool (in the backend's dtype), its slot tables, and shrink/expand
// through kernels/sgmv.
#include "engine/backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>

#include "engine/model/lora_weights.h"
#include "kernels/sgmv/sgmv_cuda.h"

namespace quilt::engine::cuda {
namespace {

using kernels::sgmv::LoraModuleRef;

}  // namespace

namespace {

// The pinned staging ring of adapter loads: the pool's size up to this (larger adapters go
// through it in chunks).
constexpr size_t kMaxStagingRingBytes = size_t{64} << 20;

}  // namespace

Result<DeviceMemoryInfo> CudaBackend::memory_info() const {
  size_t free_bytes = 0, total_bytes = 0;
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemGetInfo(&free_bytes, &total_bytes)));
  return DeviceMemoryInfo{static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

Status CudaBackend::init_lora_pool(const LoraPoolShape& shape) {
  lora_shape_ = shape;
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
  lora_loader_.reset();  // waits for its copies into the old pool
  lora_pool_.reset();
  const size_t pool_bytes = static_cast<size_t>(shape.num_pages) * shape.page_elems * dtype_size(dtype_);
  if (shape.in_kv_cache) {
    // One allocation for both (S-LoRA's unified paging): adapter pages are KV cache pages the
    // engine's allocator lent to adapters. Already zeroed by init_kv_cache.
    if (kv_ == nullptr || kv_->bytes() != pool_bytes) {
      return Status::Internal("cuda backend: a lora pool in the KV cache must cover it exactly");
    }
    lora_pool_ = kv_;
  } else {
    QUILT_ASSIGN_OR_RETURN(lora_pool_, DeviceMemory::create(pool_bytes));
    QUILT_RETURN_IF_ERROR(
        QUILT_CUDA_STATUS(cudaMemsetAsync(lora_pool_->data(), 0, lora_pool_->bytes(), stream())));
  }
  QUILT_ASSIGN_OR_RETURN(
      lora_loader_,
      LoraLoader::create(lora_pool_->data(), shape.num_pages, shape.page_elems, dtype_, stream(),
                         std::min(lora_pool_->bytes(), kMaxStagingRingBytes)));
  num_modules_ = static_cast<int64_t>(shape.max_slots) * shape.num_layers * kNumProjections;
  // Every module starts with rank 0: "this slot does not touch this projection".
  const std::vector<LoraModuleRef> empty(static_cast<size_t>(num_modules_),
                                         LoraModuleRef{0, 0.f, 0, 0});
  QUILT_RETURN_IF_ERROR(upload(empty.data(), empty.size() * sizeof(LoraModuleRef), lora_modules_));
  // Room for every page's index: the tables never need a bigger buffer (and never a free).
  page_index_capacity_ = std::max<int64_t>(1, shape.num_pages);
  const std::vector<int32_t> no_pages(static_cast<size_t>(page_index_capacity_), 0);
  return upload(no_pages.data(), no_pages.size() * sizeof(int32_t), page_indices_);
}

Result<uint64_t> CudaBackend::start_lora_load(std::span<const int32_t> pages,
                                              std::span<const float> data) {
  if (lora_loader_ == nullptr) return Status::Internal("cuda backend: no lora pool");
  return lora_loader_->start(pages, data);
}

Status CudaBackend::wait_lora_load(uint64_t id) {
  if (lora_loader_ == nullptr) return Status::Internal("cuda backend: no lora pool");
  return lora_loader_->wait(id);
}

LoraLoadStats CudaBackend::lora_load_stats() const {
  return lora_loader_ ? lora_loader_->stats() : LoraLoadStats{};
}

// The synchronous load: the same copies, then the host waits for them (no stream wait needed:
// they are complete before any later op is enqueued). Tests compare the two paths.
Status CudaBackend::write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) {
  if (lora_loader_ == nullptr) return Status::Internal("cuda backend: no lora pool");
  QUILT_ASSIGN_OR_RETURN(uint64_t id, lora_loader_->start(pages, data));
  return lora_loader_->finish(id);
}

// Both tables go up in one stream-ordered copy each from pinned staging: the steps before see the
// old tables, the steps after the new ones, and the host does not wait.
Status CudaBackend::write_lora_tables(std::span<const int32_t> page_indices,
                                      std::span<const LoraModuleRef> modules) {
  if (static_cast<int64_t>(modules.size()) != num_modules_ || lora_loader_ == nullptr ||
      static_cast<int64_t>(page_indices.size()) > page_index_capacity_) {
    return Status::Internal("cuda backend: lora tables do not fit the pool");
  }
  auto put = [&](const void* src, size_t bytes, DeviceMemory& dst) -> Status {
    if (bytes == 0) return Status::OK();
    QUILT_ASSIGN_OR_RETURN(void* staged, lora_loader_->stage(bytes));
    std::memcpy(staged, src, bytes);
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(
        cudaMemcpyAsync(dst.data(), staged, bytes, cudaMemcpyHostToDevice, stream())));
    return lora_loader_->commit_staged(stream());
  };
  QUILT_RETURN_IF_ERROR(put(page_indices.data(), page_indices.size_bytes(), *page_indices_));
  return put(modules.data(), modules.size_bytes(), *lora_modules_);
}

template <typename T>
kernels::sgmv::PagedLoraWeights<T> CudaBackend::lora_weights() const {
  return {static_cast<const T*>(lora_pool_->data()),
          lora_shape_.page_elems,
          static_cast<const int32_t*>(page_indices_->data()),
          static_cast<const LoraModuleRef*>(lora_modules_->data()),
          lora_shape_.num_layers,
          kNumProjections};
}

kernels::sgmv::LoraBatch CudaBackend::lora_batch() const {
  return {step_->num_tokens(),
          step_->token_slots.empty() ? nullptr : step_ints(offsets_.token_slots),
          static_cast<int32_t>(step_->segment_slots.size()),
          step_ints(offsets_.segment_starts),
          step_ints(offsets_.segment_slots),
          step_->max_rank};
}

Status CudaBackend::lora_shrink(const Tensor& x, int32_t layer, std::span<const int32_t> projs,
                                std::span<Tensor> v) {
  if (step_ == nullptr || lora_pool_ == nullptr) {
    return Status::Internal("cuda backend: lora_shrink without a step or a lora pool");
  }
  if (projs.empty() || projs.size() > kernels::sgmv::kMaxFusedProjs || v.size() != projs.size() ||
      x.dtype != dtype_ || !x.contiguous() || x.rows != step_->num_tokens()) {
    return Status::Internal("cuda backend: bad fused lora shrink");
  }
  for (size_t i = 0; i < projs.size(); ++i) {
    if (v[i].dtype != DType::kF32 || v[i].cols != step_->max_rank || v[i].rows != x.rows) {
      return Status::Internal("cuda backend: lora v must be [num_tokens, max_rank] float32");
    }
  }
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    kernels::sgmv::ShrinkParams<T> p{};
    p.weights = lora_weights<T>();
    p.batch = lora_batch();
    p.x = x.as<T>();
    p.in_dim = x.cols;
    p.layer = layer;
    p.num_projs = static_cast<int32_t>(projs.size());
    for (size_t i = 0; i < projs.size(); ++i) {
      p.projs[i] = projs[i];
      p.v[i] = v[i].as<float>();
    }
    return kernels::sgmv::shrink_cuda(p, stream());
  }));
}

Status CudaBackend::lora_expand(std::span<const Tensor> v, int32_t layer,
                                std::span<const ProjectionSlice> slices, Tensor& y) {
  if (step_ == nullptr || lora_pool_ == nullptr) {
    return Status::Internal("cuda backend: lora_expand without a step or a lora pool");
  }
  if (slices.empty() || slices.size() > kernels::sgmv::kMaxFusedProjs ||
      v.size() != slices.size() || y.dtype != dtype_ || y.rows != step_->num_tokens()) {
    return Status::Internal("cuda backend: bad fused lora expand");
  }
  for (size_t i = 0; i < slices.size(); ++i) {
    if (v[i].dtype != DType::kF32 || v[i].rows != y.rows || v[i].cols != step_->max_rank ||
        slices[i].col < 0 || slices[i].cols <= 0 || slices[i].col + slices[i].cols > y.cols) {
      return Status::Internal("cuda backend: bad lora expand slice");
    }
  }
  // One launch for every slice: the kernels/sgmv fused expand writes each projection's columns
  // of the one output row.
  return QUILT_CUDA_STATUS(dispatch([&](auto tag) {
    using T = decltype(tag);
    kernels::sgmv::ExpandParams<T> p{};
    p.weights = lora_weights<T>();
    p.batch = lora_batch();
    p.layer = layer;
    p.num_projs = static_cast<int32_t>(slices.size());
    for (size_t i = 0; i < slices.size(); ++i) {
      p.projs[i] = slices[i].proj;
      p.v[i] = v[i].as<float>();
      p.out_dim[i] = slices[i].cols;
      p.col_offset[i] = slices[i].col;
    }
    p.y = y.as<T>();
    p.y_row_stride = y.stride();
    return kernels::sgmv::expand_cuda(p, stream());
  }));
}

}  // namespace quilt::engine::cuda
