// Streams, events, graphs and kernel launches. The simulated device runs each piece of work when
// it is issued, in issue order (a legal schedule of CUDA's in-order streams), unless its stream is
// capturing: then the work is recorded into the graph and runs at each cudaGraphLaunch.
#include <chrono>
#include <functional>
#include <memory>
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
  CUgraph_st* capturing = nullptr;
  bool alive = true;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at{};
  bool recorded = false;
  bool timing = true;
};

namespace quilt::sim {
namespace {

constexpr size_t kMaxSharedBytes = 227 * 1024;
CUstream_st* const kLegacyStream = nullptr;
CUgraph_st* legacy_capture = nullptr;  // capture on the default stream

CUgraph_st*& capture_of(cudaStream_t s) { return s == kLegacyStream ? legacy_capture : s->capturing; }

}  // namespace

std::recursive_mutex& device_mutex() {
  static std::recursive_mutex m;
  return m;
}

cudaError_t enqueue(cudaStream_t stream, std::string_view what, std::function<void()> op) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (stream != kLegacyStream && !stream->alive) return cudaErrorInvalidResourceHandle;
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  if (CUgraph_st* g = capture_of(stream)) {
    g->nodes.push_back({std::string(what), std::move(op)});
    return cudaSuccess;
  }
  op();
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

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  if (s == nullptr) return cudaErrorInvalidValue;
  *s = new CUstream_st();
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return cudaStreamCreate(s); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned int, int) { return cudaStreamCreate(s); }
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  s->alive = false;  // kept, so a later use is an error rather than a use after free
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (s != nullptr && !s->alive) return cudaErrorInvalidResourceHandle;
  if (quilt::sim::capture_of(s) != nullptr) return cudaErrorStreamCaptureUnsupported;
  return sticky_error();
}
cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  return enqueue(s, "cudaStreamWaitEvent", [] {});
}
cudaError_t cudaDeviceSynchronize() {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
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
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  return enqueue(s, "cudaEventRecord", [e] {
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
  });
}
cudaError_t cudaEventRecordWithFlags(cudaEvent_t e, cudaStream_t s, unsigned int) {
  return cudaEventRecord(e, s);
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  return sticky_error();
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  return sticky_error();
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr || start == nullptr || end == nullptr) return cudaErrorInvalidValue;
  if (!start->timing || !end->timing) return cudaErrorInvalidResourceHandle;
  if (!start->recorded || !end->recorded) return cudaErrorInvalidResourceHandle;
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* data) {
  if (fn == nullptr) return cudaErrorInvalidValue;
  return enqueue(s, "cudaLaunchHostFunc", [fn, data] { fn(data); });
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUgraph_st*& g = quilt::sim::capture_of(s);
  if (g != nullptr) return cudaErrorIllegalState;
  g = new CUgraph_st();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  CUgraph_st*& g = quilt::sim::capture_of(s);
  if (g == nullptr) return cudaErrorIllegalState;
  if (graph == nullptr) return cudaErrorInvalidValue;
  *graph = g;
  g = nullptr;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus* status) {
  if (status == nullptr) return cudaErrorInvalidValue;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  *status = quilt::sim::capture_of(s) != nullptr ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
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
