// The CUDA shrink/expand kernels against the CPU reference, on the same bf16/fp16-rounded values.
//
// Outputs are poisoned before every launch: v with a NaN sentinel (every element the contract
// writes must change, every other must keep the exact bits), y rows of tokens without adapter with
// a NaN bit pattern that any arithmetic would change. Expand inputs carry the sentinel past each
// token's rank, and unused pool memory is NaN, so an over-read turns into NaN in y.
#include "kernels/sgmv/sgmv_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/common/cuda_check.h"
#include "kernels/sgmv/sgmv.h"
#include "tests/kernels/sgmv_test_util.h"

namespace quilt::kernels::sgmv {
namespace {

using namespace test_util;  // NOLINT: the test helpers

bool cuda_device_present(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    *why = cudaGetErrorString(err);
    (void)cudaGetLastError();  // leave no error behind for later checks
    return false;
  }
  if (n == 0) *why = "cudaGetDeviceCount found 0 devices";
  return n > 0;
}

#define QUILT_SKIP_WITHOUT_CUDA_DEVICE()                                         \
  do {                                                                           \
    std::string why_;                                                            \
    if (!cuda_device_present(&why_)) GTEST_SKIP() << "no CUDA device: " << why_; \
  } while (0)

template <typename T>
struct Elem;
template <>
struct Elem<__nv_bfloat16> {
  static float round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
  static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
  static float to(__nv_bfloat16 v) { return __bfloat162float(v); }
  static constexpr double kRelRound = 1.0 / 256;  // twice bf16's rounding error bound
};
template <>
struct Elem<__half> {
  static float round(float v) { return __half2float(__float2half_rn(v)); }
  static __half from(float v) { return __float2half_rn(v); }
  static float to(__half v) { return __half2float(v); }
  static constexpr double kRelRound = 1.0 / 2048;
};

constexpr uint16_t kSentinelT = 0xffff;  // a NaN in both bf16 and fp16

template <typename T>
uint16_t bits_of(T v) {
  uint16_t b;
  std::memcpy(&b, &v, sizeof(b));
  return b;
}
template <typename T>
T from_bits(uint16_t b) {
  T v;
  std::memcpy(static_cast<void*>(&v), &b, sizeof(b));  // bf16/fp16 are 2-byte bit patterns
  return v;
}

template <typename T>
std::vector<T> to_elems(const std::vector<float>& f) {
  std::vector<T> out(f.size());
  for (size_t i = 0; i < f.size(); ++i) out[i] = Elem<T>::from(f[i]);
  return out;
}

std::vector<float> abs_of(std::vector<float> v) {
  for (float& e : v) e = std::fabs(e);
  return v;
}

template <typename T>
struct DeviceWeights {
  explicit DeviceWeights(const Problem& p)
      : pool(to_elems<T>(p.pool)), pages(p.page_indices), modules(p.modules), spec(p.spec) {}
  bool ok() const { return pool.ok() && pages.ok() && modules.ok(); }
  PagedLoraWeights<T> get() const {
    return {pool.get(), spec.page_elems, pages.get(), modules.get(), kNumLayers, kNumProjs};
  }
  DeviceBuffer<T> pool;
  DeviceBuffer<int32_t> pages;
  DeviceBuffer<LoraModuleRef> modules;
  ProblemSpec spec;
};

struct DeviceLayout {
  explicit DeviceLayout(const Layout& l)
      : num_tokens(l.num_tokens),
        slots(l.token_slots),
        starts(l.segment_starts),
        seg_slots(l.segment_slots),
        num_segments(static_cast<int32_t>(l.segment_slots.size())) {}
  bool ok() const { return slots.ok() && starts.ok() && seg_slots.ok(); }
  LoraBatch batch(int32_t max_rank, bool segments) const {
    if (segments) {
      return {num_tokens, slots.get(), num_segments, starts.get(), seg_slots.get(), max_rank};
    }
    return {num_tokens, slots.get(), 0, nullptr, nullptr, max_rank};
  }
  int32_t num_tokens;
  DeviceBuffer<int32_t> slots, starts, seg_slots;
  int32_t num_segments;
};

constexpr int32_t kProjs[kNumProjs] = {2, 0, 1};  // permuted, to catch index mix-ups

// CPU references of one layout: values and Σ|terms| (the scale of the rounding error allowed).
struct Reference {
  std::vector<float> v[kNumProjs], v_mag[kNumProjs];  // shrink
  std::vector<float> v_in[kNumProjs];                 // expand inputs (per proj)
  std::vector<float> y0[kNumProjs], y[kNumProjs], y_mag[kNumProjs];
};

void cpu_shrink(const Problem& p, const PagedLoraWeights<float>& w, const Layout& l,
                const std::vector<float>& x, std::vector<float> (&v)[kNumProjs]) {
  ShrinkArgs args{x.data(), p.spec.in_dim, kLayer, kNumProjs, {}, {}};
  for (int i = 0; i < kNumProjs; ++i) {
    v[i].assign(static_cast<size_t>(l.num_tokens) * p.max_rank, sentinel());
    args.projs[i] = kProjs[i];
    args.v[i] = v[i].data();
  }
  shrink_cpu(w, l.batch(p.max_rank, /*segments=*/!l.segment_slots.empty()), args);
}

void cpu_expand(const Problem& p, const PagedLoraWeights<float>& w, const Layout& l, int32_t proj,
                const std::vector<float>& v, std::vector<float>& y) {
  expand_cpu(w, l.batch(p.max_rank, !l.segment_slots.empty()),
             ExpandArgs{v.data(), y.data(), p.spec.out_dim, kLayer, proj});
}

template <typename T>
Reference make_reference(const Problem& p, const Layout& l, const std::vector<float>& x,
                         uint64_t seed) {
  Reference r;
  const std::vector<float> abs_pool = abs_of(p.pool);
  PagedLoraWeights<float> abs_w = p.weights();
  abs_w.pool = abs_pool.data();
  cpu_shrink(p, p.weights(), l, x, r.v);
  cpu_shrink(p, abs_w, l, abs_of(x), r.v_mag);
  for (int32_t proj = 0; proj < kNumProjs; ++proj) {
    r.v_in[proj] = make_expand_v(p, l, proj, seed + proj);
    r.y0[proj] = random_values(static_cast<size_t>(l.num_tokens) * p.spec.out_dim, 0.05f,
                               seed + 10 + proj, Elem<T>::round);
    r.y[proj] = r.y0[proj];
    cpu_expand(p, p.weights(), l, proj, r.v_in[proj], r.y[proj]);
    r.y_mag[proj] = abs_of(r.y0[proj]);
    cpu_expand(p, abs_w, l, proj, abs_of(r.v_in[proj]), r.y_mag[proj]);
  }
  return r;
}

// v: sentinel exactly where the reference left it, close values everywhere else.
void expect_v_matches(const std::vector<float>& got, const std::vector<float>& ref,
                      const std::vector<float>& mag) {
  ASSERT_EQ(got.size(), ref.size());
  size_t touched_untouchable = 0, wrong = 0, first_wrong = SIZE_MAX;
  double d2 = 0, r2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (is_sentinel(ref[i])) {
      touched_untouchable += !is_sentinel(got[i]);
      continue;
    }
    const double d = double{got[i]} - ref[i];
    if (!(std::fabs(d) <= 1e-3 * mag[i] + 1e-6)) {
      if (wrong++ == 0) first_wrong = i;
    }
    d2 += d * d;
    r2 += double{ref[i]} * ref[i];
  }
  EXPECT_EQ(touched_untouchable, 0u) << "v elements that must stay untouched were written";
  EXPECT_EQ(wrong, 0u) << "first at " << first_wrong << ": got " << (wrong ? got[first_wrong] : 0.f)
                       << " want " << (wrong ? ref[first_wrong] : 0.f);
  ASSERT_GT(r2, 0.0);
  EXPECT_LT(std::sqrt(d2 / r2), 1e-2);
}

// y: rows of tokens without adapter keep the poison bits; the rest match y0 + delta.
template <typename T>
void expect_y_matches(const Problem& p, const Layout& l, int32_t proj, const std::vector<T>& got,
                      const Reference& r) {
  const int64_t out_dim = p.spec.out_dim;
  size_t touched_untouchable = 0, wrong = 0, first_wrong = SIZE_MAX;
  double d2 = 0, delta2 = 0;
  for (int32_t t = 0; t < l.num_tokens; ++t) {
    const bool touched = token_rank(p, l, t, proj) > 0;
    for (int64_t n = 0; n < out_dim; ++n) {
      const size_t i = static_cast<size_t>(t) * out_dim + n;
      if (!touched) {
        touched_untouchable += bits_of(got[i]) != kSentinelT;
        continue;
      }
      const double g = Elem<T>::to(got[i]), want = r.y[proj][i];
      const double d = g - want;
      if (!(std::fabs(d) <=
            Elem<T>::kRelRound * std::fabs(want) + 1e-4 * r.y_mag[proj][i] + 1e-6)) {
        if (wrong++ == 0) first_wrong = i;
      }
      d2 += d * d;
      delta2 += (want - r.y0[proj][i]) * (want - r.y0[proj][i]);
    }
  }
  EXPECT_EQ(touched_untouchable, 0u) << "rows of tokens without adapter were written";
  EXPECT_EQ(wrong, 0u) << "first at " << first_wrong << ": got "
                       << (wrong ? Elem<T>::to(got[first_wrong]) : 0.f) << " want "
                       << (wrong ? r.y[proj][first_wrong] : 0.f);
  ASSERT_GT(delta2, 0.0);
  EXPECT_LT(std::sqrt(d2 / delta2), 1e-2);
}

// y0 as uploaded: the reference's values, the poison on rows no module may touch.
template <typename T>
std::vector<T> poisoned_y0(const Problem& p, const Layout& l, int32_t proj, const Reference& r) {
  std::vector<T> y = to_elems<T>(r.y0[proj]);
  for (int32_t t = 0; t < l.num_tokens; ++t) {
    if (token_rank(p, l, t, proj) > 0) continue;
    std::fill_n(y.begin() + static_cast<int64_t>(t) * p.spec.out_dim, p.spec.out_dim,
                from_bits<T>(kSentinelT));
  }
  return y;
}

struct WidthCase {
  int64_t in_dim, out_dim, page_elems;
};
// Rows span pages everywhere but the last case; 176 and 100 are not multiples of 64 (100 and page
// sizes 40 and 4100 not of 8: the scalar path); 4096 / 11008 are Llama-7B's hidden and MLP widths.
constexpr WidthCase kWidths[] = {{32, 64, 16},      {64, 32, 64},        {176, 100, 48},
                                 {100, 176, 40},    {4096, 11008, 1024}, {11008, 4096, 4096},
                                 {4096, 4096, 4100}};

// Ranks 1..256 per (slot, proj), rank 0 included.
ProblemSpec spec_for(const WidthCase& w, uint64_t seed, RoundFn round) {
  return {
      w.in_dim,     w.out_dim,
      w.page_elems, {{16, 8, 0}, {128, 64, 128}, {1, 4, 1}, {64, 0, 16}, {8, 16, 4}, {256, 1, 0}},
      seed,         round};
}

struct NamedLayout {
  const char* name;
  Layout layout;
  bool segments;
};

std::vector<NamedLayout> layouts(int32_t num_slots, uint64_t seed) {
  const Layout long_segs = segment_layout(
      {{1, 11}, {-1, 3}, {0, 9}, {2, 0}, {5, 10}, {3, 1}, {4, 17}, {2, 2}, {-1, 1}, {1, 4}});
  std::vector<std::pair<int32_t, int32_t>> singles;
  for (int32_t s : random_slots(24, num_slots, seed)) singles.push_back({s, 1});
  return {{"sgmv_long_segments", long_segs, true},
          {"bgmv_sorted", per_token_layout(long_segs.token_slots), false},
          {"sgmv_single_token_segments", segment_layout(singles), true},
          {"bgmv_unsorted", per_token_layout(random_slots(45, num_slots, seed + 1)), false}};
}

template <typename T>
class SgmvCuda : public ::testing::Test {};
using ElemTypes = ::testing::Types<__nv_bfloat16, __half>;
struct ElemNames {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, __half> ? "fp16" : "bf16";
  }
};
TYPED_TEST_SUITE(SgmvCuda, ElemTypes, ElemNames);

// Runs shrink (q, k, v fused) and expand (each proj) for every layout and tiling, fresh poison
// each.
template <typename T>
void check_case(const WidthCase& w, uint64_t seed) {
  const Problem p = make_problem(spec_for(w, seed, Elem<T>::round));
  DeviceWeights<T> dw(p);
  ASSERT_TRUE(dw.ok());
  for (const NamedLayout& nl : layouts(p.num_slots, seed + 1)) {
    SCOPED_TRACE(nl.name);
    const Layout& l = nl.layout;
    const std::vector<float> x =
        random_values(static_cast<size_t>(l.num_tokens) * w.in_dim, 1.f, seed + 2, Elem<T>::round);
    const Reference r = make_reference<T>(p, l, x, seed + 3);
    DeviceLayout dl(l);
    DeviceBuffer<T> dx(to_elems<T>(x));
    ASSERT_TRUE(dl.ok() && dx.ok());
    const LoraBatch batch = dl.batch(p.max_rank, nl.segments);

    for (TokenTiling tiling :
         {TokenTiling::kPerToken, TokenTiling::kTokenTile, TokenTiling::kAuto}) {
      SCOPED_TRACE("tiling " + std::to_string(static_cast<int>(tiling)));
      ShrinkParams<T> sp{dw.get(), batch, dx.get(), w.in_dim, kLayer, kNumProjs, {}, {}, tiling};
      std::vector<DeviceBuffer<float>> dv;
      const std::vector<float> poison(static_cast<size_t>(l.num_tokens) * p.max_rank, sentinel());
      for (int i = 0; i < kNumProjs; ++i) {
        dv.emplace_back(poison);
        ASSERT_TRUE(dv.back().ok());
        sp.projs[i] = kProjs[i];
        sp.v[i] = dv.back().get();
      }
      ASSERT_EQ(shrink_cuda(sp, nullptr), cudaSuccess);
      ASSERT_EQ(QUILT_CUDA_CHECK(cudaDeviceSynchronize()), cudaSuccess);
      for (int i = 0; i < kNumProjs; ++i) {
        SCOPED_TRACE("shrink proj " + std::to_string(kProjs[i]));
        std::vector<float> got;
        ASSERT_EQ(dv[i].copy_to_host(got), cudaSuccess);
        expect_v_matches(got, r.v[i], r.v_mag[i]);
      }

      for (int32_t proj = 0; proj < kNumProjs; ++proj) {
        SCOPED_TRACE("expand proj " + std::to_string(proj));
        DeviceBuffer<float> dvin(r.v_in[proj]);
        DeviceBuffer<T> dy(poisoned_y0<T>(p, l, proj, r));
        ASSERT_TRUE(dvin.ok() && dy.ok());
        const ExpandParams<T> ep{dw.get(),  batch,  dvin.get(), dy.get(),
                                 w.out_dim, kLayer, proj,       tiling};
        ASSERT_EQ(expand_cuda(ep, nullptr), cudaSuccess);
        ASSERT_EQ(QUILT_CUDA_CHECK(cudaDeviceSynchronize()), cudaSuccess);
        std::vector<T> got;
        ASSERT_EQ(dy.copy_to_host(got), cudaSuccess);
        expect_y_matches<T>(p, l, proj, got, r);
      }
    }
  }
}

TYPED_TEST(SgmvCuda, MatchesCpuReferenceOnEveryWidthLayoutAndTiling) {
  QUILT_SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 1000;
  for (const WidthCase& w : kWidths) {
    SCOPED_TRACE(std::to_string(w.in_dim) + "x" + std::to_string(w.out_dim) + " page " +
                 std::to_string(w.page_elems));
    check_case<TypeParam>(w, seed);
    seed += 100;
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Captured into a graph and replayed, the launches give the same results: no host sync, no
// allocation and no host read inside them.
TYPED_TEST(SgmvCuda, LaunchesAreGraphCapturable) {
  QUILT_SKIP_WITHOUT_CUDA_DEVICE();
  using T = TypeParam;
  const WidthCase w{4096, 1000, 1024};
  const Problem p = make_problem(spec_for(w, 77, Elem<T>::round));
  const NamedLayout nl = layouts(p.num_slots, 78)[0];
  const Layout& l = nl.layout;
  const std::vector<float> x =
      random_values(static_cast<size_t>(l.num_tokens) * w.in_dim, 1.f, 79, Elem<T>::round);
  const Reference r = make_reference<T>(p, l, x, 80);
  DeviceWeights<T> dw(p);
  DeviceLayout dl(l);
  DeviceBuffer<T> dx(to_elems<T>(x));
  const std::vector<float> poison(static_cast<size_t>(l.num_tokens) * p.max_rank, sentinel());
  DeviceBuffer<float> dv0(poison), dv1(poison), dv2(poison), dvin(r.v_in[0]);
  DeviceBuffer<T> dy(poisoned_y0<T>(p, l, 0, r));
  ASSERT_TRUE(dw.ok() && dl.ok() && dx.ok() && dv0.ok() && dv1.ok() && dv2.ok() && dvin.ok() &&
              dy.ok());
  const LoraBatch batch = dl.batch(p.max_rank, nl.segments);
  const ShrinkParams<T> sp{dw.get(),
                           batch,
                           dx.get(),
                           w.in_dim,
                           kLayer,
                           kNumProjs,
                           {kProjs[0], kProjs[1], kProjs[2]},
                           {dv0.get(), dv1.get(), dv2.get()}};
  const ExpandParams<T> ep{dw.get(), batch, dvin.get(), dy.get(), w.out_dim, kLayer, 0};

  cudaStream_t stream;
  ASSERT_EQ(QUILT_CUDA_CHECK(cudaStreamCreate(&stream)), cudaSuccess);
  cudaGraph_t graph;
  ASSERT_EQ(QUILT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal)),
            cudaSuccess);
  EXPECT_EQ(shrink_cuda(sp, stream), cudaSuccess);
  EXPECT_EQ(expand_cuda(ep, stream), cudaSuccess);
  ASSERT_EQ(QUILT_CUDA_CHECK(cudaStreamEndCapture(stream, &graph)), cudaSuccess);
  cudaGraphExec_t exec;
  ASSERT_EQ(QUILT_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0)), cudaSuccess);
  ASSERT_EQ(QUILT_CUDA_CHECK(cudaGraphLaunch(exec, stream)), cudaSuccess);
  ASSERT_EQ(QUILT_CUDA_CHECK(cudaStreamSynchronize(stream)), cudaSuccess);
  EXPECT_EQ(QUILT_CUDA_CHECK(cudaGraphExecDestroy(exec)), cudaSuccess);
  EXPECT_EQ(QUILT_CUDA_CHECK(cudaGraphDestroy(graph)), cudaSuccess);
  EXPECT_EQ(QUILT_CUDA_CHECK(cudaStreamDestroy(stream)), cudaSuccess);

  const DeviceBuffer<float>* dvs[kNumProjs] = {&dv0, &dv1, &dv2};
  for (int i = 0; i < kNumProjs; ++i) {
    std::vector<float> got;
    ASSERT_EQ(dvs[i]->copy_to_host(got), cudaSuccess);
    expect_v_matches(got, r.v[i], r.v_mag[i]);
  }
  std::vector<T> got_y;
  ASSERT_EQ(dy.copy_to_host(got_y), cudaSuccess);
  expect_y_matches<T>(p, l, 0, got_y, r);
}

// Host-side checks reject bad arguments before touching the device, so these run without one.
TEST(SgmvCudaArgs, RejectsInconsistentArgumentsWithoutLaunching) {
  // Never dereferenced: the launchers must return before any device access.
  alignas(16) static __nv_bfloat16 pool[8];
  static int32_t ints[4] = {0, 1, 0, 0};
  static LoraModuleRef modules[1];
  static float v[1];
  const PagedLoraWeights<__nv_bfloat16> w{pool, 8, ints, modules, 1, 1};
  const LoraBatch batch{1, ints, 0, nullptr, nullptr, 4};

  ShrinkParams<__nv_bfloat16> sp{w, batch, pool, 8, 0, 1, {0}, {v}};
  sp.num_projs = 0;
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);
  sp.num_projs = kMaxFusedProjs + 1;
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);
  sp.num_projs = 1;
  sp.layer = 1;  // num_layers is 1
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);
  sp.layer = 0;
  sp.projs[0] = 1;  // num_projs of the weights is 1
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);
  sp.projs[0] = 0;
  sp.batch.token_slots = nullptr;  // BGMV without slots
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);

  ExpandParams<__nv_bfloat16> ep{w, batch, v, pool, 0, 0, 0};  // out_dim 0
  EXPECT_EQ(expand_cuda(ep, nullptr), cudaErrorInvalidValue);
  ep.out_dim = 8;
  ep.proj = -1;
  EXPECT_EQ(expand_cuda(ep, nullptr), cudaErrorInvalidValue);
}

TEST(SgmvCudaArgs, EmptyBatchIsANoOp) {
  alignas(16) static __half pool[8];
  static int32_t ints[4] = {0, 1, 0, 0};
  static LoraModuleRef modules[1];
  static float v[1];
  const PagedLoraWeights<__half> w{pool, 8, ints, modules, 1, 1};
  const LoraBatch empty{0, ints, 0, nullptr, nullptr, 4};
  EXPECT_EQ(shrink_cuda(ShrinkParams<__half>{w, empty, pool, 8, 0, 1, {0}, {v}}, nullptr),
            cudaSuccess);
  EXPECT_EQ(expand_cuda(ExpandParams<__half>{w, empty, v, pool, 8, 0, 0}, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace quilt::kernels::sgmv
