// CUDA error checking that names file and line, and a move-only RAII device buffer.
//
// Library code never exits or aborts on a CUDA error: launchers return the cudaError_t, and the
// engine turns it into a Status at its boundary (cuda_status()). Thread-safe: everything here is
// stateless apart from the buffer each DeviceBuffer owns.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quilt::kernels {

// "file:line: expr: cudaErrorName (description)", the text every report below uses.
inline std::string cuda_error_message(cudaError_t err, const char* expr, const char* file,
                                      int line) {
  return std::string(file) + ":" + std::to_string(line) + ": " + expr + ": " +
         cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}

// Reports a failed call on stderr and hands the error back unchanged, so that a caller can both
// see where a failure started and propagate it. Prefer QUILT_CUDA_CHECK, which fills in the place.
inline cudaError_t cuda_check(cudaError_t err, const char* expr, const char* file, int line) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "%s\n", cuda_error_message(err, expr, file, line).c_str());
  }
  return err;
}

// The engine's boundary: a CUDA error as a Status (kInternal: the device failed, not the request).
inline Status cuda_status(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return Status::OK();
  return Status::Internal(cuda_error_message(err, expr, file, line));
}

}  // namespace quilt::kernels

// Evaluates a CUDA call once; on failure logs file:line and the error. Yields the cudaError_t.
#define QUILT_CUDA_CHECK(expr) ::quilt::kernels::cuda_check((expr), #expr, __FILE__, __LINE__)

// Returns the error from the enclosing function (which returns cudaError_t) when the call fails.
#define QUILT_CUDA_RETURN_IF_ERROR(expr)                        \
  do {                                                          \
    const cudaError_t quilt_cuda_err_ = QUILT_CUDA_CHECK(expr); \
    if (quilt_cuda_err_ != cudaSuccess) return quilt_cuda_err_; \
  } while (0)

// A CUDA call's outcome as a quilt::Status naming file and line.
#define QUILT_CUDA_STATUS(expr) ::quilt::kernels::cuda_status((expr), #expr, __FILE__, __LINE__)

namespace quilt::kernels {

// Owns `size()` elements of device memory. Meant for tests and tools: the engine's memory comes
// from its paged pool, never from one cudaMalloc per tensor. A failed allocation leaves the buffer
// empty and error() says why, because a constructor cannot return the error.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) {
    if (n == 0) return;
    void* p = nullptr;
    error_ = QUILT_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
    if (error_ == cudaSuccess) {
      ptr_ = static_cast<T*>(p);
      size_ = n;
    }
  }
  // Allocates and uploads `host` (synchronous copy: for tests, not for the serving path).
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    if (error_ == cudaSuccess && size_ > 0) error_ = copy_from_host(host.data(), host.size());
  }
  ~DeviceBuffer() { reset(); }

  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)), error_(o.error_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
      error_ = o.error_;
    }
    return *this;
  }

  T* get() const { return ptr_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  cudaError_t error() const { return error_; }
  bool ok() const { return error_ == cudaSuccess; }

  // Synchronous copies of the first n elements; n > size() is an error, not a silent clamp.
  cudaError_t copy_from_host(const T* src, size_t n) {
    if (n > size_) return cudaErrorInvalidValue;
    return QUILT_CUDA_CHECK(cudaMemcpy(ptr_, src, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  cudaError_t copy_to_host(T* dst, size_t n) const {
    if (n > size_) return cudaErrorInvalidValue;
    return QUILT_CUDA_CHECK(cudaMemcpy(dst, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  cudaError_t copy_from_host(const std::vector<T>& src) {
    return copy_from_host(src.data(), src.size());
  }
  cudaError_t copy_to_host(std::vector<T>& dst) const {
    dst.resize(size_);
    return copy_to_host(dst.data(), size_);
  }

  // Frees now; errors from cudaFree are reported but cannot be returned from a destructor.
  void reset() {
    if (ptr_ != nullptr) QUILT_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    size_ = 0;
  }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
  cudaError_t error_ = cudaSuccess;
};

}  // namespace quilt::kernels
