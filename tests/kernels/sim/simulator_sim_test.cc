// The CUDA simulator's own tests: it must report the three planted faults of issue 8 (an
// out-of-bounds write, a missing barrier, a shared-memory race) and the other classes it checks,
// and reproduce known results (a reduction, warp collectives, a WMMA GEMM, graphs and events).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/sim/sim_runtime.h"
#include "tests/kernels/sim/sim_kernels.h"

namespace quilt::sim::test {
namespace {

template <typename T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

// The reports a planted fault filed; afterwards the device is usable again.
std::vector<std::string> faults() {
  std::vector<std::string> r = take_reports();
  (void)cudaGetLastError();
  return r;
}

bool any_contains(const std::vector<std::string>& reports, const std::string& a, const std::string& b = "") {
  for (const std::string& r : reports) {
    if (r.find(a) != std::string::npos && r.find(b) != std::string::npos) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& reports) {
  std::string out;
  for (const std::string& r : reports) out += r + "\n";
  return out;
}

TEST(CudaSimulator, ReportsAnOutOfBoundsWriteWithKernelAndAddress) {
  constexpr int kN = 100;
  float* p = device_alloc<float>(kN);
  ASSERT_EQ(write_one_past_end(p, kN), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);  // sticky, as on a GPU
  const auto r = faults();
  char addr[32];
  std::snprintf(addr, sizeof addr, "0x%llx", static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(p + kN)));
  ASSERT_EQ(r.size(), 1u) << joined(r);
  EXPECT_NE(r[0].find("write_one_past_end_kernel"), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("invalid __global__ write of 4 bytes"), std::string::npos) << r[0];
  EXPECT_NE(r[0].find(addr), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("0 bytes past the end of a 400-byte device allocation"), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("thread (36,0,0) of block (1,0,0)"), std::string::npos) << r[0];
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
}

TEST(CudaSimulator, ReportsAMissingBarrierAsARace) {
  float* in = device_alloc<float>(128);
  float* out = device_alloc<float>(1);
  std::vector<float> ones(128, 1.f);
  ASSERT_EQ(cudaMemcpy(in, ones.data(), 512, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(reduce_missing_barrier(in, out, 128), cudaSuccess);
  const auto r = faults();
  // Thread 0 runs its whole loop first and reads s[1]; thread 1 then overwrites it unsynchronised.
  EXPECT_TRUE(any_contains(r, "reduce_missing_barrier_kernel", "racecheck: write-after-read hazard on static shared"))
      << joined(r);
  cudaFree(in);
  cudaFree(out);
}

TEST(CudaSimulator, ReportsASharedMemoryWriteWriteRace) {
  int* out = device_alloc<int>(1);
  ASSERT_EQ(all_threads_write_one_word(out), cudaSuccess);
  const auto r = faults();
  EXPECT_TRUE(any_contains(r, "all_threads_write_one_word_kernel", "racecheck: write-after-write hazard"))
      << joined(r);
  EXPECT_TRUE(any_contains(r, "thread (0,0,0) accessed it")) << joined(r);
  cudaFree(out);
}

TEST(CudaSimulator, ReportsThreadsThatExitWhileOthersWaitAtABarrier) {
  int* out = device_alloc<int>(32);
  ASSERT_EQ(barrier_in_half_the_block(out), cudaSuccess);
  const auto r = faults();
  EXPECT_TRUE(any_contains(r, "synccheck: 16 thread(s) of block (0,0,0) (first thread (16,0,0)) exited while 16 wait"))
      << joined(r);
  cudaFree(out);
}

TEST(CudaSimulator, ReportsThreadsWaitingAtDifferentBarriers) {
  int* out = device_alloc<int>(32);
  ASSERT_EQ(barriers_at_two_sites(out), cudaSuccess);
  const auto r = faults();
  EXPECT_TRUE(any_contains(r, "synccheck: threads of block (0,0,0) wait at different barriers", "sim_kernels.cu"))
      << joined(r);
  cudaFree(out);
}

TEST(CudaSimulator, ReportsDynamicSharedMemoryOverrunAndUseAfterFree) {
  float* out = device_alloc<float>(32);
  ASSERT_EQ(read_dynamic_shared_past_end(out, 32), cudaSuccess);
  auto r = faults();
  EXPECT_TRUE(any_contains(r, "memcheck: invalid __shared__ read", "past the end of the 128 bytes of dynamic shared memory")) << joined(r);
  EXPECT_LE(r.size(), 8u) << "reports are capped per launch";
  ASSERT_EQ(cudaFree(out), cudaSuccess);
  ASSERT_EQ(scale(out, 2.f, 32, nullptr), cudaSuccess);
  r = faults();
  EXPECT_TRUE(any_contains(r, "scale_kernel", "use after free")) << joined(r);
}

TEST(CudaSimulator, ReportsAShuffleWhoseMaskNamesMissingLanes) {
  float* out = device_alloc<float>(16);
  ASSERT_EQ(shuffle_with_missing_lane(out), cudaSuccess);
  const auto r = faults();
  EXPECT_TRUE(any_contains(r, "the mask names lanes ≥ 16")) << joined(r);
  cudaFree(out);
}

TEST(CudaSimulator, CopiesAreBoundsCheckedAndMemoryStartsPoisoned) {
  float* p = device_alloc<float>(8);
  std::vector<float> host(8, 0.f);
  ASSERT_EQ(cudaMemcpy(host.data(), p, 32, cudaMemcpyDeviceToHost), cudaSuccess);
  for (float v : host) EXPECT_TRUE(std::isnan(v));  // uninitialised device memory reads as NaN
  std::vector<float> nine(9, 1.f);
  EXPECT_EQ(cudaMemcpy(p, nine.data(), 36, cudaMemcpyHostToDevice), cudaErrorIllegalAddress);
  const auto r = faults();
  EXPECT_TRUE(any_contains(r, "cudaMemcpy destination: 36 bytes", "0 bytes past the end of a 32-byte")) << joined(r);
  cudaFree(p);
}

TEST(CudaSimulator, SumsWithSharedMemoryShufflesAndAtomics) {
  constexpr int kN = 1000;
  std::vector<float> in(kN);
  for (int i = 0; i < kN; ++i) in[i] = static_cast<float>(i);
  float* d_in = device_alloc<float>(kN);
  float* d_out = device_alloc<float>(1);
  ASSERT_EQ(cudaMemcpy(d_in, in.data(), kN * 4, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_out, 0, 4), cudaSuccess);
  ASSERT_EQ(block_sum(d_in, d_out, kN, 256), cudaSuccess);
  float sum = 0;
  ASSERT_EQ(cudaMemcpy(&sum, d_out, 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(sum, 499500.f);
  cudaFree(d_in);
  cudaFree(d_out);
}

TEST(CudaSimulator, WarpCollectivesFollowCudaSemantics) {
  std::vector<int> in(32);
  for (int i = 0; i < 32; ++i) in[i] = (i * 7) % 32;
  int* d_in = device_alloc<int>(32);
  int* d_out = device_alloc<int>(100);
  ASSERT_EQ(cudaMemcpy(d_in, in.data(), 128, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_out, 0, 400), cudaSuccess);
  ASSERT_EQ(warp_ops(d_in, d_out), cudaSuccess);
  std::vector<int> out(100);
  ASSERT_EQ(cudaMemcpy(out.data(), d_out, 400, cudaMemcpyDeviceToHost), cudaSuccess);
  unsigned ballot = 0;
  int sum = 0;
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(out[l], l == 0 ? in[0] : in[l - 1]) << "shfl_up lane " << l;
    EXPECT_EQ(out[32 + l], in[l / 8 * 8 + 5]) << "shfl width 8, lane " << l;
    if (in[l] % 2 != 0) ballot |= 1u << l;
    sum += in[l];
  }
  EXPECT_EQ(static_cast<unsigned>(out[64]), ballot);
  EXPECT_EQ(out[65], 1);
  EXPECT_EQ(out[66], 1);
  for (int l = 0; l < 32; ++l) EXPECT_EQ(out[67 + l], sum);
  EXPECT_EQ(out[99], 31);
  cudaFree(d_in);
  cudaFree(d_out);
}

TEST(CudaSimulator, WmmaGemmMatchesAFloatReference) {
  constexpr int kM = 32, kN = 48, kK = 64;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<__nv_bfloat16> a(kM * kK), b(kK * kN);
  for (auto& v : a) v = __float2bfloat16_rn(u(rng));
  for (auto& v : b) v = __float2bfloat16_rn(u(rng));
  auto* da = device_alloc<__nv_bfloat16>(a.size());
  auto* db = device_alloc<__nv_bfloat16>(b.size());
  float* dc = device_alloc<float>(kM * kN);
  ASSERT_EQ(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(wmma_gemm(da, db, dc, kM, kN, kK), cudaSuccess);
  std::vector<float> c(kM * kN);
  ASSERT_EQ(cudaMemcpy(c.data(), dc, c.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int i = 0; i < kM; ++i) {
    for (int j = 0; j < kN; ++j) {
      double ref = 0;
      for (int k = 0; k < kK; ++k) {
        ref += double(__bfloat162float(a[i * kK + k])) * double(__bfloat162float(b[k * kN + j]));
      }
      EXPECT_NEAR(c[i * kN + j], ref, 1e-4) << i << "," << j;
    }
  }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
}

TEST(CudaSimulator, GraphsReplayCapturedWorkAndEventsTimeIt) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  float* p = device_alloc<float>(64);
  std::vector<float> ones(64, 1.f), out(64);
  ASSERT_EQ(cudaMemcpy(p, ones.data(), 256, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(scale(p, 3.f, 64, s), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(out.data(), p, 256, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out[0], 1.f);  // captured, not run
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaEvent_t start, stop;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(start, s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(stop, s), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  float ms = -1;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  EXPECT_GE(ms, 0.f);
  ASSERT_EQ(cudaMemcpyAsync(out.data(), p, 256, cudaMemcpyDeviceToHost, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  for (float v : out) EXPECT_EQ(v, 9.f);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(s);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle);
  cudaFree(p);
}

// Work on a created stream runs when the host waits for it, so code that reads results without
// waiting, or a stream that does not wait for another's event, sees stale data here too.
TEST(CudaSimulator, StreamWorkRunsWhenTheHostWaits) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), 64 * sizeof(float)), cudaSuccess);
  for (int i = 0; i < 64; ++i) pinned[i] = 1.f;
  float* d = device_alloc<float>(64);
  ASSERT_EQ(cudaMemcpyAsync(d, pinned, 256, cudaMemcpyHostToDevice, s), cudaSuccess);
  ASSERT_EQ(scale(d, 5.f, 64, s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(pinned, d, 256, cudaMemcpyDeviceToHost, s), cudaSuccess);
  EXPECT_EQ(pinned[0], 1.f);  // nothing has waited for the stream yet
  cudaEvent_t done;
  ASSERT_EQ(cudaEventCreate(&done), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(done, s), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(done), cudaSuccess);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(pinned[i], 5.f);
  cudaEventDestroy(done);
  cudaStreamDestroy(s);
  cudaFree(d);
  cudaFreeHost(pinned);
}

TEST(CudaSimulator, AStreamSeesAnotherStreamsWorkOnlyThroughAnEvent) {
  cudaStream_t producer, consumer;
  ASSERT_EQ(cudaStreamCreateWithFlags(&producer, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&consumer, cudaStreamNonBlocking), cudaSuccess);
  std::vector<float> ones(64, 1.f);
  float* d = device_alloc<float>(64);
  float* seen = device_alloc<float>(64);
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), 256), cudaSuccess);
  for (bool wait : {false, true}) {
    ASSERT_EQ(cudaMemcpy(d, ones.data(), 256, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(scale(d, 7.f, 64, producer), cudaSuccess);
    cudaEvent_t produced;
    ASSERT_EQ(cudaEventCreateWithFlags(&produced, cudaEventDisableTiming), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(produced, producer), cudaSuccess);
    if (wait) ASSERT_EQ(cudaStreamWaitEvent(consumer, produced, 0), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(seen, d, 256, cudaMemcpyDeviceToDevice, consumer), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(pinned, seen, 256, cudaMemcpyDeviceToHost, consumer), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(consumer), cudaSuccess);
    EXPECT_EQ(pinned[0], wait ? 7.f : 1.f) << (wait ? "with" : "without") << " cudaStreamWaitEvent";
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    cudaEventDestroy(produced);
  }
  cudaStreamDestroy(producer);
  cudaStreamDestroy(consumer);
  cudaFree(d);
  cudaFree(seen);
  cudaFreeHost(pinned);
}

TEST(CudaSimulator, RefusesBadLaunchConfigurations) {
  float* p = device_alloc<float>(1);
  EXPECT_EQ(read_dynamic_shared_past_end(p, 300 * 1024), cudaErrorInvalidValue);  // > 227 KiB
  cudaFree(p);
}

}  // namespace
}  // namespace quilt::sim::test
