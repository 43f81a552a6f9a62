// Streams, events, graphs and kernel launches, asynchronous as on a GPU.
//
// Work issued to a created stream is queued and runs only when the host waits for it (a stream,
// event or device synchronisation, a copy into pageable memory, cudaFree) or when another stream
// waits on one of its events; so a missing cudaStreamWaitEvent or a host read of pinned memory
// before the copy's synchronisation shows here as stale data, as it could on a GPU. The legacy
// default stream runs its work at once, after all work queued on blocking streams (CUDA's implicit
// synchronisation); streams made with cudaStreamNonBlocking are not waited for. While a stream
// captures, its work is recorded into the graph instead, and runs at each cudaGraphLaunch.
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/sim/block_runner.h"
#include "kernels/sim/sim_launch.h"
#include "kernels/sim/sim_runtime.h"
#include "kernels/sim/sim_state.h"

struct CUgraph_st {
  struct Node {
    std::string what;
    std::function<void()> op;
  };
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<CUgraph_st::Node> nodes;
};
struct CUstream_st {
  std::deque<std::function<void()>> queue;
  uint64_t issued = 0;    // work items queued so far
  uint64_t finished = 0;  // work items run so far
  CUgraph_st* capturing = nullptr;
  bool alive = true;
  bool blocking = true;   // waits for, and is waited for by, the legacy default stream
};
struct CUevent_st {
  CUstream_st* stream = nullptr;  // where the last record was issued
  uint64_t seq = 0;               // ... as that stream's seq-th work item
  std::chrono::steady_clock::time_point at{};
  bool recorded = false;
  bool timing = true;
};

namespace quilt::sim {
namespace {

constexpr size_t kMaxSharedBytes = 227 * 1024;

CUstream_st& legacy() {
  static CUstream_st s;
  return s;
}
std::vector<CUstream_st*>& streams() {
  static std::vector<CUstream_st*> v;
  return v;
}

// cudaStreamLegacy (0x1) and cudaStreamPerThread (0x2) are the default stream here.
CUstream_st* resolve(cudaStream_t s) {
  const auto v = reinterpret_cast<uintptr_t>(s);
  return v <= 2 ? &legacy() : s;
}

// Runs s's queued work up to and including its seq-th item.
void run_until(CUstream_st* s, uint64_t seq) {
  while (s->finished < seq && !s->queue.empty()) {
    std::function<void()> op = std::move(s->queue.front());
    s->queue.pop_front();
    op();
    ++s->finished;
  }
}
void run_all(CUstream_st* s) { run_until(s, s->issued); }

void run_blocking_streams() {
  for (CUstream_st* s : streams()) {
    if (s->blocking) run_all(s);
  }
}

}  // namespace

std::recursive_mutex& device_mutex() {
  static std::recursive_mutex m;
  return m;
}

void synchronize_device() {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  for (CUstream_st* s : streams()) run_all(s);
}

void synchronize_stream(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* s = resolve(stream);
  if (s == &legacy()) {
    run_blocking_streams();
  } else {
    run_all(s);
  }
}

cudaError_t enqueue(cudaStream_t stream, std::string_view what, std::function<void()> op) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* s = resolve(stream);
  if (!s->alive) return cudaErrorInvalidResourceHandle;
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  if (s->capturing != nullptr) {
    s->capturing->nodes.push_back({std::string(what), std::move(op)});
    return cudaSuccess;
  }
  if (s == &legacy()) {
    run_blocking_streams();
    op();
    return cudaSuccess;
  }
  s->queue.push_back(std::move(op));
  ++s->issued;
  return cudaSuccess;
}

cudaError_t launch(std::string_view name, dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, std::function<void()> body) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  if (shared_bytes > kMaxSharedBytes) return cudaErrorInvalidValue;
  return enqueue(stream, name, [name = std::string(name), grid, block, shared_bytes, body = std::move(body)] {
    run_grid(name, grid, block, shared_bytes, body);
  });
}

}  // namespace quilt::sim

using quilt::sim::device_mutex;
using quilt::sim::enqueue;
using quilt::sim::sticky_error;

extern "C" {

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  if (s == nullptr) return cudaErrorInvalidValue;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  *s = new CUstream_st();
  (*s)->blocking = (flags & cudaStreamNonBlocking) == 0;
  quilt::sim::streams().push_back(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned int flags, int) {
  return cudaStreamCreateWithFlags(s, flags);
}
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (!s->alive) return cudaErrorInvalidResourceHandle;
  quilt::sim::run_all(s);  // work already issued completes, as CUDA promises
  s->alive = false;        // kept, so a later use is an error rather than a use after free
  auto& v = quilt::sim::streams();
  std::erase(v, s);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* s = quilt::sim::resolve(stream);
  if (!s->alive) return cudaErrorInvalidResourceHandle;
  if (s->capturing != nullptr) return cudaErrorStreamCaptureUnsupported;
  quilt::sim::synchronize_stream(stream);
  return sticky_error();
}
cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* recorder = e->stream;
  const uint64_t seq = e->seq;
  if (recorder == nullptr) return cudaSuccess;  // never recorded: nothing to wait for
  return enqueue(s, "cudaStreamWaitEvent", [recorder, seq] { quilt::sim::run_until(recorder, seq); });
}
cudaError_t cudaDeviceSynchronize() {
  quilt::sim::synchronize_device();
  return sticky_error();
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (e == nullptr) return cudaErrorInvalidValue;
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags) {
  const cudaError_t err = cudaEventCreate(e);
  if (err == cudaSuccess) (*e)->timing = (flags & cudaEventDisableTiming) == 0;
  return err;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* s = quilt::sim::resolve(stream);
  const cudaError_t err = enqueue(stream, "cudaEventRecord", [e] {
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
  });
  if (err == cudaSuccess && s->capturing == nullptr && s != &quilt::sim::legacy()) {
    e->stream = s;
    e->seq = s->issued;
    e->recorded = false;
  } else if (err == cudaSuccess && s->capturing == nullptr) {
    e->stream = nullptr;  // ran at once on the legacy stream
  }
  return err;
}
cudaError_t cudaEventRecordWithFlags(cudaEvent_t e, cudaStream_t s, unsigned int) {
  return cudaEventRecord(e, s);
}
// The simulated device makes progress when polled: querying an event runs the work before it.
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (e->stream != nullptr && e->stream->alive) quilt::sim::run_until(e->stream, e->seq);
  return sticky_error();
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr || start == nullptr || end == nullptr) return cudaErrorInvalidValue;
  if (!start->timing || !end->timing) return cudaErrorInvalidResourceHandle;
  if (!start->recorded || !end->recorded) return cudaErrorNotReady;
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* data) {
  if (fn == nullptr) return cudaErrorInvalidValue;
  return enqueue(s, "cudaLaunchHostFunc", [fn, data] { fn(data); });
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* s = quilt::sim::resolve(stream);
  if (s->capturing != nullptr) return cudaErrorIllegalState;
  if (s == &quilt::sim::legacy()) return cudaErrorStreamCaptureUnsupported;
  s->capturing = new CUgraph_st();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUstream_st* s = quilt::sim::resolve(stream);
  if (s->capturing == nullptr) return cudaErrorIllegalState;
  if (graph == nullptr) return cudaErrorInvalidValue;
  *graph = s->capturing;
  s->capturing = nullptr;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* status) {
  if (status == nullptr) return cudaErrorInvalidValue;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  *status = quilt::sim::resolve(stream)->capturing != nullptr ? cudaStreamCaptureStatusActive
                                                               : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (exec == nullptr || graph == nullptr) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long f) {
  return cudaGraphInstantiate(exec, graph, f);
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (exec == nullptr) return cudaErrorInvalidResourceHandle;
  for (const auto& node : exec->nodes) {
    if (const cudaError_t e = enqueue(s, node.what, node.op); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (graph == nullptr || count == nullptr) return cudaErrorInvalidValue;
  if (nodes == nullptr) {
    *count = graph->nodes.size();
    return cudaSuccess;
  }
  *count = std::min(*count, graph->nodes.size());
  for (size_t i = 0; i < *count; ++i) nodes[i] = reinterpret_cast<cudaGraphNode_t>(&graph->nodes[i]);
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

}  // extern "C"
