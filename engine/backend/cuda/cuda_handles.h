// RAII owners of the CUDA handles the backend holds: device and pinned memory, a stream, an event,
// cuBLASLt's handle. Each frees what it owns exactly once; creation errors come back as Status.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <utility>

#include "common/status.h"
#include "engine/backend/backend.h"
#include "kernels/common/cuda_check.h"

namespace quilt::engine::cuda {

// A cuBLAS(Lt) status as a Status naming the call.
inline Status cublas_status(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::OK();
  return Status::Internal(std::string(file) + ":" + std::to_string(line) + ": " + expr +
                          ": cuBLAS status " + std::to_string(static_cast<int>(s)));
}
#define QUILT_CUBLAS_STATUS(expr) \
  ::quilt::engine::cuda::cublas_status((expr), #expr, __FILE__, __LINE__)

// Device memory as a Backend Buffer. cudaFree synchronizes the device, so buffers are freed only
// when the engine drops a tensor for good, never inside a step.
class DeviceMemory final : public Buffer {
 public:
  static Result<std::shared_ptr<DeviceMemory>> create(size_t bytes) {
    void* p = nullptr;
    if (bytes > 0) QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMalloc(&p, bytes)));
    return std::shared_ptr<DeviceMemory>(new DeviceMemory(p, bytes));
  }
  ~DeviceMemory() override {
    if (ptr_ != nullptr) QUILT_CUDA_CHECK(cudaFree(ptr_));
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  void* data() override { return ptr_; }
  size_t bytes() const override { return bytes_; }

 private:
  DeviceMemory(void* p, size_t bytes) : ptr_(p), bytes_(bytes) {}
  void* ptr_;
  size_t bytes_;
};

// Page-locked host memory: the staging area of asynchronous uploads.
class PinnedMemory {
 public:
  PinnedMemory() = default;
  ~PinnedMemory() { reset(); }
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;

  // Grows to at least `bytes` (contents are not kept).
  Status reserve(size_t bytes) {
    if (bytes <= bytes_) return Status::OK();
    reset();
    QUILT_RETURN_IF_ERROR(QUILT_CUDA_STATUS(cudaMallocHost(&ptr_, bytes)));
    bytes_ = bytes;
    return Status::OK();
  }
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void reset() {
    if (ptr_ != nullptr) QUILT_CUDA_CHECK(cudaFreeHost(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream() = default;
  ~Stream() {
    if (s_ != nullptr) QUILT_CUDA_CHECK(cudaStreamDestroy(s_));
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Status create() {
    return QUILT_CUDA_STATUS(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() = default;
  ~Event() {
    if (e_ != nullptr) QUILT_CUDA_CHECK(cudaEventDestroy(e_));
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Status create() {
    return QUILT_CUDA_STATUS(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming));
  }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

class LtHandle {
 public:
  LtHandle() = default;
  ~LtHandle() {
    if (h_ != nullptr) cublasLtDestroy(h_);
  }
  LtHandle(const LtHandle&) = delete;
  LtHandle& operator=(const LtHandle&) = delete;
  Status create() { return QUILT_CUBLAS_STATUS(cublasLtCreate(&h_)); }
  cublasLtHandle_t get() const { return h_; }

 private:
  cublasLtHandle_t h_ = nullptr;
};

}  // namespace quilt::engine::cuda
