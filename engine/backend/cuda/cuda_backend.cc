// CudaBackend: device selection, memory, the KV cache and the once-per-step metadata upload.
#include "engine/backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>

namespace quilt::engine::cuda {
namespace {

// The 16 bits of `v` rounded to nearest in `dtype` (kF16 or kBF16).
uint16_t half_bits(float v, DType dtype) {
  uint16_t bits;
  if (dtype == DType::kF16) {
    const __half h = __float2half_rn(v);
    std::memcpy(&bits, &h, sizeof(bits));
  } else {
    const __nv_bfloat16 b = __float2bfloat16_rn(v);
    std::memcpy(&bits, &b, sizeof(bits));
  }
  return bits;
}

float half_to_float(uint16_t bits, DType dtype) {
  if (dtype == DType::kF16) {
    __half h;
    std::memcpy(static_cast<void*>(&h), &bits, sizeof(bits));  // __half has no public bits
    return __half2float(h);
  }
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float v;
  std::memcpy(&v, &wide, sizeof(v));
  return v;
}

}  // namespace

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(int device, DType dtype) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) {
    return Status::InvalidArgument("the cuda backend computes in float16 or bfloat16");
  }
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    return Status::Unavailable("device 'cuda:" + std::to_string(device) +
                               "': no CUDA device found (" +
                               (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") + ")");
  }
  if (device < 0 || device >= count) {
    return Status::InvalidArgument("device 'cuda:" + std::to_string(device) + "': only " +
                                   std::to_string(count) + " CUDA device(s) present");
  }
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaSetDevice(device)));
  std::unique_ptr<CudaBackend> b(new CudaBackend(device, dtype));
  QUILT_RETURN_IF_ERROR(b->stream_.create());
  QUILT_RETURN_IF_ERROR(b->meta_uploaded_.create());
  QUILT_RETURN_IF_ERROR(b->gemm_.init());
  return b;
}

CudaBackend::~CudaBackend() {
  // Buffers are about to be freed: let queued work that reads them finish first.
  if (stream_.get() != nullptr) QUILT_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
}

Result<Tensor> CudaBackend::allocate(int64_t rows, int64_t cols, DType dtype) {
  if (rows < 0 || cols < 0) return Status::Internal("cuda backend: negative tensor shape");
  if (dtype != DType::kF32 && dtype != dtype_) {
    return Status::Internal(std::string("cuda backend: this backend keeps ") +
                            dtype_name(dtype_) + " tensors, not " + dtype_name(dtype));
  }
  QUILT_ASSIGN_OR_RETURN(
      std::shared_ptr<DeviceMemory> mem,
      DeviceMemory::create(static_cast<size_t>(rows * cols * dtype_size(dtype))));
  Tensor t;
  t.data = mem->data();
  t.buffer = std::move(mem);
  t.dtype = dtype;
  t.rows = rows;
  t.cols = cols;
  return t;
}

Result<Tensor> CudaBackend::load_weight(const TensorView& src, int64_t rows, int64_t cols) {
  if (src.num_elements() != rows * cols) {
    return Status::Internal("cuda backend: " + src.name + " does not hold " + std::to_string(rows) +
                            "x" + std::to_string(cols) + " elements");
  }
  QUILT_ASSIGN_OR_RETURN(Tensor t, allocate(rows, cols, dtype_));
  const size_t n = static_cast<size_t>(rows * cols);
  std::vector<uint16_t> bits(n);
  if (src.dtype == dtype_) {
    std::memcpy(bits.data(), src.data, n * sizeof(uint16_t));  // already the device format
  } else {
    // bf16 → fp16 is exact for every weight in [6.1e-5, 65504] in magnitude; smaller ones keep
    // fp16's subnormal precision (absolute error below 3e-8).
    const std::vector<float> wide = to_float32(src);
    for (size_t i = 0; i < n; ++i) bits[i] = half_bits(wide[i], dtype_);
  }
  // Weights load once, before serving: a synchronous copy keeps `bits` alive long enough.
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(t.data, bits.data(), n * sizeof(uint16_t),
                                                          cudaMemcpyHostToDevice, stream())));
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
  return t;
}

Status CudaBackend::download(const Tensor& src, std::span<float> dst) {
  const size_t n = static_cast<size_t>(src.num_elements());
  if (dst.size() < n) return Status::Internal("cuda backend: download target too small");
  if (src.dtype == DType::kF32) {
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(dst.data(), src.data, n * sizeof(float),
                                                            cudaMemcpyDeviceToHost, stream())));
    return QUILT_CUDA_STATUS(cudaStreamSynchronize(stream()));
  }
  if (src.dtype != dtype_) return Status::Internal("cuda backend: download of a foreign dtype");
  std::vector<uint16_t> bits(n);
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(
      bits.data(), src.data, n * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream())));
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
  for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(bits[i], dtype_);
  return Status::OK();
}

Status CudaBackend::init_kv_cache(const KvCacheShape& shape) {
  kv_shape_ = shape;
  layer_elems_ = 2LL * shape.num_blocks * shape.block_size * shape.num_kv_heads * shape.head_dim;
  kv_.reset();
  QUILT_ASSIGN_OR_RETURN(kv_, DeviceMemory::create(static_cast<size_t>(layer_elems_) *
                                                   shape.num_layers * dtype_size(dtype_)));
  // Unwritten slots are never read (attention reads positions < ctx_len only); zero them anyway
  // so that a bug reads zeros, not garbage from a previous allocation.
  return QUILT_CUDA_STATUS(cudaMemsetAsync(kv_->data(), 0, kv_->bytes(), stream()));
}

Status CudaBackend::check(const Tensor& t, const char* what, bool view_ok) const {
  if (t.dtype != dtype_ || (t.data == nullptr && t.num_elements() > 0)) {
    return Status::Internal(std::string("cuda backend: ") + what + " is not a " +
                            dtype_name(dtype_) + " tensor");
  }
  if (!view_ok && !t.contiguous()) {
    return Status::Internal(std::string("cuda backend: ") + what + " must be contiguous");
  }
  return Status::OK();
}

Status CudaBackend::begin_step(const StepLayout& layout) {
  return begin_step_in(layout, meta_buffer_, 4096, nullptr);
}

Status CudaBackend::begin_step_in(const StepLayout& layout, std::shared_ptr<DeviceMemory>& buffer,
                                  size_t min_bytes, bool* reallocated) {
  step_ = nullptr;
  const int64_t cache_slots = static_cast<int64_t>(kv_shape_.num_blocks) * kv_shape_.block_size;
  QUILT_ASSIGN_OR_RETURN(offsets_,
                         pack_step(layout, cache_slots, kv_shape_.block_size, meta_host_));
  const size_t bytes = static_cast<size_t>(offsets_.total) * sizeof(int32_t);
  // The previous step's upload must have left the staging buffer before it is rewritten.
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaEventSynchronize(meta_uploaded_.get())));
  if (reallocated != nullptr) *reallocated = false;
  if (buffer == nullptr || buffer->bytes() < bytes) {
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));  // old one unread
    buffer.reset();
    QUILT_ASSIGN_OR_RETURN(buffer, DeviceMemory::create(std::max<size_t>(bytes, min_bytes)));
    QUILT_RETURN_IF_ERROR(meta_pinned_.reserve(buffer->bytes()));
    if (reallocated != nullptr) *reallocated = true;
  }
  std::memcpy(meta_pinned_.data(), meta_host_.data(), bytes);
  if (bytes > 0) {
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMemcpyAsync(
        buffer->data(), meta_pinned_.data(), bytes, cudaMemcpyHostToDevice, stream())));
  }
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaEventRecord(meta_uploaded_.get(), stream())));
  meta_dev_ = static_cast<const int32_t*>(buffer->data());
  step_ = &layout;
  return Status::OK();
}

Status CudaBackend::require_step(const char* op) const {
  if (step_ == nullptr)
    return Status::Internal(std::string("cuda backend: ") + op + " before begin_step");
  return Status::OK();
}

Status CudaBackend::upload(const void* host, size_t bytes, std::shared_ptr<DeviceMemory>& dev) {
  if (dev == nullptr || dev->bytes() < bytes) {
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaStreamSynchronize(stream())));
    dev.reset();
    QUILT_ASSIGN_OR_RETURN(dev, DeviceMemory::create(std::max<size_t>(bytes, 256)));
  }
  if (bytes == 0) return Status::OK();
  QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(
      cudaMemcpyAsync(dev->data(), host, bytes, cudaMemcpyHostToDevice, stream())));
  // Pageable source: wait, so that the caller may free or change it as soon as this returns.
  return QUILT_CUDA_STATUS(cudaStreamSynchronize(stream()));
}

Result<Tensor> CudaBackend::run_step(const StepLayout& layout, const StepForward& forward,
                                     bool graphs) {
  if (graphs) {
    if (graphs_ == nullptr) graphs_ = std::make_unique<DecodeGraphs>(*this);
    QUILT_ASSIGN_OR_RETURN(std::optional<Tensor> out, graphs_->run(layout, forward));
    if (out) return *out;
  }
  QUILT_RETURN_IF_ERROR(begin_step(layout));
  return forward(layout);
}

StepGraphStats CudaBackend::step_graph_stats() const {
  return graphs_ ? graphs_->stats() : StepGraphStats{};
}

}  // namespace quilt::engine::cuda
