// The CUDA runtime's memory, device and error calls on simulated device memory. Signatures are the
// toolkit's own (cuda_runtime_api.h), so code built against the simulator links unchanged.
#include <cuda_runtime.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/sim/device_memory.h"
#include "kernels/sim/sim_runtime.h"
#include "kernels/sim/sim_state.h"

using quilt::sim::MemoryKind;

namespace {

thread_local cudaError_t t_last_error = cudaSuccess;
int t_device = 0;

// Records a failed call for cudaGetLastError, as the runtime does, and passes the error on.
cudaError_t fail(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

// Host memory not from cudaMallocHost: pageable. The device side of a copy must be device memory.
bool span_ok(const void* p, size_t n, const char* what) {
  if (n == 0) return true;
  return quilt::sim::check_device_span(p, n, what);
}

bool is_sim_memory(const void* p) {
  return quilt::sim::in_device_range(reinterpret_cast<uintptr_t>(p));
}

// A copy on stream s. Pageable host memory makes it synchronous as CUDA does: from pageable
// memory the source is taken at the call (the caller may reuse it at once), into pageable memory
// the call returns once the stream has reached and done the copy.
cudaError_t copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s, const char* name) {
  if (n == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice ||
                       (kind == cudaMemcpyDefault && is_sim_memory(dst));
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ||
                       (kind == cudaMemcpyDefault && is_sim_memory(src));
  const std::string dst_what = std::string(name) + " destination";
  const std::string src_what = std::string(name) + " source";
  if (!dst_dev && !is_sim_memory(dst)) {  // into pageable memory: wait for the stream, copy now
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(s, &capturing);
    if (capturing != cudaStreamCaptureStatusNone) return fail(cudaErrorStreamCaptureUnsupported);
    std::lock_guard<std::recursive_mutex> lock(quilt::sim::device_mutex());
    quilt::sim::synchronize_stream(s);
    if (const cudaError_t e = quilt::sim::sticky_error(); e != cudaSuccess) return fail(e);
    if (src_dev && !span_ok(src, n, src_what.c_str())) return fail(quilt::sim::sticky_error());
    std::memmove(dst, src, n);
    return cudaSuccess;
  }
  if (!src_dev && !is_sim_memory(src)) {  // from pageable memory: take the bytes now
    auto bytes = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                     static_cast<const char*>(src) + n);
    return fail(quilt::sim::enqueue(s, name, [=] {
      if (span_ok(dst, n, dst_what.c_str())) std::memcpy(dst, bytes->data(), n);
    }));
  }
  return fail(quilt::sim::enqueue(s, name, [=] {
    if (dst_dev && !span_ok(dst, n, dst_what.c_str())) return;
    if (src_dev && !span_ok(src, n, src_what.c_str())) return;
    std::memmove(dst, src, n);
  }));
}

cudaError_t fill(void* dst, int value, size_t n, cudaStream_t s, const char* name) {
  if (n == 0) return cudaSuccess;
  return fail(quilt::sim::enqueue(s, name, [=] {
    if (span_ok(dst, n, name)) std::memset(dst, value, n);
  }));
}

}  // namespace

namespace quilt::sim {

bool check_device_span(const void* p, size_t bytes, std::string_view what) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (bytes == 0 || within_one_allocation(a, bytes)) return true;
  // Name the first byte that is out of bounds, which is what the access actually hit.
  uintptr_t bad = a;
  if (addressable(a, 1)) {
    size_t lo = 0, hi = bytes;  // invariant: [a, a + lo + 1) addressable, a + hi not
    while (hi - lo > 1) {
      const size_t mid = lo + (hi - lo) / 2;
      if (addressable(a, mid + 1)) lo = mid; else hi = mid;
    }
    bad = a + hi;
  }
  report(std::string(what) + ": " + std::to_string(bytes) + " bytes at " + describe_address(a) +
         " are not inside one live allocation; first bad byte " + describe_address(bad));
  return false;
}

}  // namespace quilt::sim

extern "C" {

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  *p = quilt::sim::allocate(bytes, MemoryKind::kDevice);
  return *p == nullptr ? fail(cudaErrorMemoryAllocation) : cudaSuccess;
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(quilt::sim::device_mutex());
  quilt::sim::synchronize_device();  // cudaFree waits for the device, as CUDA's does
  return quilt::sim::release(p, MemoryKind::kDevice) ? cudaSuccess : fail(cudaErrorInvalidValue);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (p == nullptr) return cudaSuccess;
  return fail(quilt::sim::enqueue(s, "cudaFreeAsync", [p] {
    if (!quilt::sim::release(p, MemoryKind::kDevice)) {
      quilt::sim::report("cudaFreeAsync: " + quilt::sim::describe_address(reinterpret_cast<uintptr_t>(p)) +
                         " is not a live device allocation");
    }
  }));
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  *p = quilt::sim::allocate(bytes, MemoryKind::kPinnedHost);
  return *p == nullptr ? fail(cudaErrorMemoryAllocation) : cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) { return cudaMallocHost(p, bytes); }
cudaError_t cudaFreeHost(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(quilt::sim::device_mutex());
  quilt::sim::synchronize_device();
  return quilt::sim::release(p, MemoryKind::kPinnedHost) ? cudaSuccess : fail(cudaErrorInvalidValue);
}
cudaError_t cudaHostRegister(void*, size_t, unsigned int) { return cudaSuccess; }
cudaError_t cudaHostUnregister(void*) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  const size_t cap = quilt::sim::device_capacity(), used = quilt::sim::device_bytes_in_use();
  if (free_bytes) *free_bytes = cap - used;
  if (total) *total = cap;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  const cudaError_t e = copy(dst, src, n, kind, nullptr, "cudaMemcpy");
  return e != cudaSuccess ? e : fail(quilt::sim::sticky_error());
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  return copy(dst, src, n, kind, s, "cudaMemcpyAsync");
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t s) {
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidPitchValue);
  for (size_t r = 0; r < height; ++r) {
    const cudaError_t e = copy(static_cast<char*>(dst) + r * dpitch,
                               static_cast<const char*>(src) + r * spitch, width, kind, s, "cudaMemcpy2DAsync");
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                         size_t height, cudaMemcpyKind kind) {
  return cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, nullptr);
}
cudaError_t cudaMemset(void* dst, int value, size_t n) {
  const cudaError_t e = fill(dst, value, n, nullptr, "cudaMemset");
  return e != cudaSuccess ? e : fail(quilt::sim::sticky_error());
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s) {
  return fill(dst, value, n, s, "cudaMemsetAsync");
}

cudaError_t cudaGetDeviceCount(int* n) {
  if (n == nullptr) return fail(cudaErrorInvalidValue);
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? (t_device = 0, cudaSuccess) : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* d) {
  if (d == nullptr) return fail(cudaErrorInvalidValue);
  *d = t_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  if (d != 0) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof(*p));
  std::strncpy(p->name, "Quilt CUDA simulator (CPU)", sizeof(p->name) - 1);
  p->totalGlobalMem = quilt::sim::device_capacity();
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->memoryBusWidth = 5120;
  p->totalConstMem = 64 * 1024;
  p->concurrentKernels = 1;
  p->asyncEngineCount = 2;
  p->unifiedAddressing = 1;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int d) {
  if (v == nullptr) return fail(cudaErrorInvalidValue);
  cudaDeviceProp p;
  if (const cudaError_t e = cudaGetDeviceProperties(&p, d); e != cudaSuccess) return e;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = static_cast<int>(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrWarpSize: *v = p.warpSize; break;
    case cudaDevAttrL2CacheSize: *v = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *v = p.maxThreadsPerMultiProcessor; break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute, int) {
  return func == nullptr ? fail(cudaErrorInvalidDeviceFunction) : cudaSuccess;
}
cudaError_t cudaDeviceReset() {
  (void)quilt::sim::take_reports();
  t_last_error = cudaSuccess;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  if (v == nullptr) return fail(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) { return cudaDriverGetVersion(v); }

cudaError_t cudaGetLastError() {
  const cudaError_t sticky = quilt::sim::sticky_error();
  const cudaError_t e = sticky != cudaSuccess ? sticky : t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  const cudaError_t sticky = quilt::sim::sticky_error();
  return sticky != cudaSuccess ? sticky : t_last_error;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define QUILT_SIM_NAME(x) case x: return #x;
    QUILT_SIM_NAME(cudaSuccess)
    QUILT_SIM_NAME(cudaErrorInvalidValue)
    QUILT_SIM_NAME(cudaErrorMemoryAllocation)
    QUILT_SIM_NAME(cudaErrorInvalidConfiguration)
    QUILT_SIM_NAME(cudaErrorInvalidDevice)
    QUILT_SIM_NAME(cudaErrorInvalidResourceHandle)
    QUILT_SIM_NAME(cudaErrorIllegalAddress)
    QUILT_SIM_NAME(cudaErrorIllegalState)
    QUILT_SIM_NAME(cudaErrorInvalidPitchValue)
    QUILT_SIM_NAME(cudaErrorInvalidDeviceFunction)
    QUILT_SIM_NAME(cudaErrorStreamCaptureUnsupported)
    QUILT_SIM_NAME(cudaErrorNoDevice)
    QUILT_SIM_NAME(cudaErrorNotSupported)
#undef QUILT_SIM_NAME
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    default: return cudaGetErrorName(e);
  }
}

}  // extern "C"
