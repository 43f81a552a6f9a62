// The paged attention kernel against a double-precision CPU reference, with and without a forced
// split-K (partitions of one chunk, so short contexts split into many, some of them empty for
// short queries), with a sliding window and soft-capping. fp16 storage; outputs are poisoned
// with NaN before every launch, so an unwritten element fails. On a GPU and in the simulator.
#include "kernels/attention/paged_attention.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

namespace quilt::kernels::attention {
namespace {

constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 16, kBlockSize = 16;
constexpr int kKvDim = kKvHeads * kHeadDim;

template <typename T>
struct DeviceArray {
  explicit DeviceArray(const std::vector<T>& host) : n(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceArray() { EXPECT_EQ(cudaFree(ptr), cudaSuccess); }
  std::vector<T> download() const {
    std::vector<T> host(n);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  T* ptr = nullptr;
  size_t n;
};

struct Case {
  std::vector<AttentionSeq> seqs;
  std::vector<int32_t> token_seq, block_tables;
  std::vector<float> q, k_cache, v_cache;  // fp16-exact values
  int num_tokens = 0;
};

float fp16(float v) { return __half2float(__float2half_rn(v)); }

// Sequences of (context, query rows), blocks shuffled, random q/K/V.
Case make_case(const std::vector<std::pair<int, int>>& specs, std::mt19937& rng) {
  Case c;
  std::normal_distribution<float> normal(0.f, 1.f);
  int blocks = 0;
  for (auto [ctx, q_len] : specs) blocks += (ctx + kBlockSize - 1) / kBlockSize;
  std::vector<int32_t> order(blocks);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (auto [ctx, q_len] : specs) {
    AttentionSeq s{c.num_tokens, q_len, ctx, static_cast<int32_t>(c.block_tables.size())};
    for (int b = 0; b < (ctx + kBlockSize - 1) / kBlockSize; ++b) {
      c.block_tables.push_back(order[c.block_tables.size()]);
    }
    for (int i = 0; i < q_len; ++i) c.token_seq.push_back(static_cast<int32_t>(c.seqs.size()));
    c.num_tokens += q_len;
    c.seqs.push_back(s);
  }
  c.q.resize(static_cast<size_t>(c.num_tokens) * kHeads * kHeadDim);
  for (float& v : c.q) v = fp16(2.f * normal(rng));
  c.k_cache.resize(static_cast<size_t>(blocks) * kBlockSize * kKvDim);
  c.v_cache.resize(c.k_cache.size());
  for (float& v : c.k_cache) v = fp16(normal(rng));
  for (float& v : c.v_cache) v = fp16(normal(rng));
  return c;
}

std::vector<double> reference(const Case& c, float scale, float softcap, int window) {
  std::vector<double> out(c.q.size());
  for (int t = 0; t < c.num_tokens; ++t) {
    const AttentionSeq& s = c.seqs[c.token_seq[t]];
    const int visible = s.ctx_len - s.q_len + (t - s.q_start) + 1;
    const int first = window > 0 ? std::max(0, visible - window) : 0;
    for (int h = 0; h < kHeads; ++h) {
      const int kvh = h / (kHeads / kKvHeads);
      std::vector<double> w;
      double max_w = -INFINITY;
      for (int j = first; j < visible; ++j) {
        const int64_t slot =
            int64_t{c.block_tables[s.block_offset + j / kBlockSize]} * kBlockSize + j % kBlockSize;
        double dot = 0;
        for (int d = 0; d < kHeadDim; ++d) {
          dot += double{c.q[(t * kHeads + h) * kHeadDim + d]} *
                 c.k_cache[slot * kKvDim + kvh * kHeadDim + d];
        }
        double sc = dot * scale;
        if (softcap > 0) sc = softcap * std::tanh(sc / softcap);
        w.push_back(sc);
        max_w = std::max(max_w, sc);
      }
      double sum = 0;
      for (double& x : w) sum += (x = std::exp(x - max_w));
      for (int d = 0; d < kHeadDim; ++d) {
        double acc = 0;
        for (int j = first; j < visible; ++j) {
          const int64_t slot = int64_t{c.block_tables[s.block_offset + j / kBlockSize]} *
                                   kBlockSize + j % kBlockSize;
          acc += w[j - first] * c.v_cache[slot * kKvDim + kvh * kHeadDim + d];
        }
        out[(t * kHeads + h) * kHeadDim + d] = acc / sum;
      }
    }
  }
  return out;
}

double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

std::vector<__half> halves(const std::vector<float>& v) {
  std::vector<__half> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = __float2half_rn(v[i]);
  return h;
}

// Runs the kernel over `c` with `partitions` pieces of `partition_size` (1: no split).
std::vector<float> run(const Case& c, float scale, float softcap, int window, int partitions,
                       int partition_size) {
  DeviceArray<__half> q(halves(c.q)), k(halves(c.k_cache)), v(halves(c.v_cache));
  DeviceArray<__half> out(std::vector<__half>(c.q.size(), __float2half_rn(NAN)));
  DeviceArray<int32_t> token_seq(c.token_seq), tables(c.block_tables);
  DeviceArray<AttentionSeq> seqs(c.seqs);
  const size_t partial = static_cast<size_t>(c.num_tokens) * kHeads * partitions;
  DeviceArray<float> workspace(std::vector<float>(partial * (kHeadDim + 2), NAN));
  PagedAttentionParams<__half> p{};
  p.q = q.ptr;
  p.out = out.ptr;
  p.k_cache = k.ptr;
  p.v_cache = v.ptr;
  p.token_seq = token_seq.ptr;
  p.seqs = seqs.ptr;
  p.block_tables = tables.ptr;
  p.num_tokens = c.num_tokens;
  p.num_heads = kHeads;
  p.num_kv_heads = kKvHeads;
  p.head_dim = kHeadDim;
  p.block_size = kBlockSize;
  p.scale = scale;
  p.q_stride = kHeads * kHeadDim;
  p.softcap = softcap;
  p.sliding_window = window;
  p.num_partitions = partitions;
  p.partition_size = partition_size;
  if (partitions > 1) {
    p.partial_acc = workspace.ptr;
    p.partial_ml = workspace.ptr + partial * kHeadDim;
  }
  EXPECT_EQ(paged_attention_cuda(p, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> result;
  for (__half h : out.download()) result.push_back(__half2float(h));
  return result;
}

TEST(PagedAttentionCudaTest, SplitKMatchesTheReferenceAndTheUnsplitKernel) {
  std::mt19937 rng(42);
  // Decodes over 700 and 260 positions, a chunk of 3 over 300, a fresh prefill of 5.
  const Case c = make_case({{700, 1}, {300, 3}, {5, 5}, {260, 1}}, rng);
  struct Options {
    float scale, softcap;
    int window;
  };
  for (const Options o : {Options{0.25f, 0.f, 0}, Options{0.25f, 3.f, 0},
                          Options{0.25f, 0.f, 200}, Options{0.1f, 8.f, 130}}) {
    const std::vector<double> ref = reference(c, o.scale, o.softcap, o.window);
    const std::vector<float> whole = run(c, o.scale, o.softcap, o.window, 1, 0);
    const std::vector<float> split = run(c, o.scale, o.softcap, o.window, 6, 128);
    // 3 partitions of at least 128 over 700 positions: each query's pieces grow to cover its
    // span (a graph's plan replayed at a longer context).
    const std::vector<float> grown = run(c, o.scale, o.softcap, o.window, 3, 128);
    const double e_whole = relative_error(whole, ref), e_split = relative_error(split, ref),
                 e_grown = relative_error(grown, ref);
    std::printf("[ attention ] softcap %.0f window %d: |d|/|ref| whole %.3g, split %.3g, "
                "grown %.3g\n", o.softcap, o.window, e_whole, e_split, e_grown);
    EXPECT_LT(e_whole, 2e-3);  // fp16 output rounding, float32 accumulation
    EXPECT_LT(e_split, 2e-3);
    EXPECT_LT(e_grown, 2e-3);
  }
}

TEST(PagedAttentionCudaTest, PlanSplitsOnlyLongSpansWithinTheWorkspace) {
  EXPECT_EQ(plan_split(kSplitMinSpan, 4, 32, 128, 1 << 24).num_partitions, 1);
  const SplitPlan p = plan_split(4000, 4, 32, 128, 1 << 24);
  EXPECT_EQ(p.num_partitions, 8);
  EXPECT_EQ(p.partition_size % kAttentionChunk, 0);
  EXPECT_GE(int64_t{p.num_partitions} * p.partition_size, 4000);
  EXPECT_EQ(p.workspace_floats, int64_t{4} * 32 * 8 * (128 + 2));
  // 131072 positions: at most kMaxPartitions pieces.
  EXPECT_EQ(plan_split(131072, 1, 32, 128, 1 << 24).num_partitions, kMaxPartitions);
  // A prefill of 8192 tokens does not fit two partitions in the workspace: no split.
  EXPECT_EQ(plan_split(131072, 8192, 32, 128, 1 << 24).num_partitions, 1);
  // Any span (a graph): one decode token on 8 KV heads takes 16 pieces, 64 tokens none.
  EXPECT_EQ(plan_split_any_span(1, 8, 32, 128, 1 << 24).num_partitions, kMaxGraphPartitions);
  EXPECT_EQ(plan_split_any_span(1, 8, 32, 128, 1 << 24).partition_size, kMinPartition);
  EXPECT_EQ(plan_split_any_span(64, 8, 32, 128, 1 << 24).num_partitions, 1);
}

TEST(PagedAttentionCudaTest, RefusesBadOptions) {
  PagedAttentionParams<__half> p{};
  p.num_tokens = 1;
  p.num_heads = kHeads;
  p.num_kv_heads = kKvHeads;
  p.head_dim = kHeadDim;
  p.block_size = kBlockSize;
  p.q_stride = kHeads * kHeadDim;
  p.scale = 0.f;  // must be positive
  EXPECT_EQ(paged_attention_cuda(p, nullptr), cudaErrorInvalidValue);
  p.scale = 0.25f;
  p.sliding_window = -1;
  EXPECT_EQ(paged_attention_cuda(p, nullptr), cudaErrorInvalidValue);
  p.sliding_window = 0;
  p.num_partitions = 2;  // a split without its workspace
  p.partition_size = kAttentionChunk;
  EXPECT_EQ(paged_attention_cuda(p, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace quilt::kernels::attention
