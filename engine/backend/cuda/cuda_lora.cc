// CudaBackend's LoRA: the page pool (in the backend's dtype), its slot tables, and shrink/expand
// through kernels/sgmv.
#include "engine/backend/cuda/cuda_backend.h"

#include <cstring>

#include "engine/model/lora_weights.h"
#include "kernels/sgmv/sgmv_cuda.h"

namespace quilt::engine::cuda {
namespace {

using kernels::sgmv::LoraModuleRef;

}  // namespace

Status CudaBackend::init_lora_pool(const LoraPoolShape& shape) {
  lora_shape_ = shape;
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
  lora_pool_.reset();
  QUILT_ASSIGN_OR_RETURN(lora_pool_, DeviceMemory::create(static_cast<size_t>(shape.num_pages) *
                                                          shape.page_elems * dtype_size(dtype_)));
  QUILT_RETURN_IF_ERROR(
      QUILT_CUDA_STATUS(cudaMemsetAsync(lora_pool_->data(), 0, lora_pool_->bytes(), stream())));
  num_modules_ = static_cast<int64_t>(shape.max_slots) * shape.num_layers * kNumProjections;
  // Every module starts with rank 0: "this slot does not touch this projection".
  const std::vector<LoraModuleRef> empty(static_cast<size_t>(num_modules_),
                                         LoraModuleRef{0, 0.f, 0, 0});
  QUILT_RETURN_IF_ERROR(upload(empty.data(), empty.size() * sizeof(LoraModuleRef), lora_modules_));
  const int32_t no_pages = 0;
  return upload(&no_pages, sizeof(no_pages), page_indices_);
}

Status CudaBackend::write_lora_pages(std::span<const int32_t> pages, std::span<const float> data) {
  const int64_t pe = lora_shape_.page_elems;
  if (lora_pool_ == nullptr || data.size() != pages.size() * static_cast<size_t>(pe)) {
    return Status::Internal("cuda backend: lora page data does not fill its pages");
  }
  std::vector<uint16_t> converted(data.size());
  if (dtype_ == DType::kF16) {
    for (size_t i = 0; i < data.size(); ++i) {
      const __half h = __float2half_rn(data[i]);
      std::memcpy(&converted[i], &h, sizeof(h));
    }
  } else {
    for (size_t i = 0; i < data.size(); ++i) {
      const __nv_bfloat16 b = __float2bfloat16_rn(data[i]);
      std::memcpy(&converted[i], &b, sizeof(b));
    }
  }
  uint16_t* pool = static_cast<uint16_t*>(lora_pool_->data());
  for (size_t i = 0; i < pages.size(); ++i) {
    if (pages[i] < 0 || pages[i] >= lora_shape_.num_pages) {
      return Status::Internal("cuda backend: lora page index out of range");
    }
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(
        cudaMemcpyAsync(pool + pages[i] * pe, converted.data() + i * pe, pe * sizeof(uint16_t),
                        cudaMemcpyHostToDevice, stream())));
  }
  // Adapter loads are synchronous for now (asynchronous loading from pinned memory is issue 9's
  // item 3): `converted` must outlive the copies.
  return QUILT_CUDA_STATUS(cudaStreamSynchronize(stream()));
}

Status CudaBackend::write_lora_tables(std::span<const int32_t> page_indices,
                                      std::span<const LoraModuleRef> modules) {
  if (static_cast<int64_t>(modules.size()) != num_modules_) {
    return Status::Internal("cuda backend: lora module table has the wrong size");
  }
  QUILT_RETURN_IF_ERROR(upload(page_indices.data(), page_indices.size_bytes(), page_indices_));
  return upload(modules.data(), modules.size_bytes(), lora_modules_);
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
