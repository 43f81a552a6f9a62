// The CUDA shrink/expand kernels against the CPU reference, on the same bf16/fp16-rounded values,
// on a GPU and in the CUDA simulator (small shapes there: it is ~1000x slower than a GPU).
//
// Outputs are poisoned before every launch: v with a NaN sentinel (the contract writes every
// element: the value below rank, exact zeros elsewhere), y with a NaN bit pattern that any
// arithmetic would change on rows of tokens without adapter and in the padding between fused
// projections. Expand inputs carry the sentinel past each token's rank, and unused pool memory is
// NaN, so an over-read turns into NaN in y.
#include "kernels/sgmv/sgmv_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <bit>
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

// On a machine without a GPU the device tests skip; in the simulator they must always run.
#ifdef QUILT_CUDA_SIM
#define QUILT_SKIP_WITHOUT_CUDA_DEVICE()                                                    \
  do {                                                                                      \
    std::string why_;                                                                       \
    if (!cuda_device_present(&why_)) FAIL() << "the simulator reports no device: " << why_; \
  } while (0)
#else
#define QUILT_SKIP_WITHOUT_CUDA_DEVICE()                                         \
  do {                                                                           \
    std::string why_;                                                            \
    if (!cuda_device_present(&why_)) GTEST_SKIP() << "no CUDA device: " << why_; \
  } while (0)
#endif

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
  std::vector<float> v[kNumProjs], v_mag[kNumProjs];                 // shrink, in kProjs order
  std::vector<float> v_in[kNumProjs];                                // expand inputs, by proj
  std::vector<float> y0[kNumProjs], y[kNumProjs], y_mag[kNumProjs];  // by proj, own width
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
             ExpandArgs{v.data(), y.data(), p.spec.out_dim_of(proj), kLayer, proj});
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
    r.y0[proj] = random_values(static_cast<size_t>(l.num_tokens) * p.spec.out_dim_of(proj), 0.05f,
                               seed + 10 + proj, Elem<T>::round);
    r.y[proj] = r.y0[proj];
    cpu_expand(p, p.weights(), l, proj, r.v_in[proj], r.y[proj]);
    r.y_mag[proj] = abs_of(r.y0[proj]);
    cpu_expand(p, abs_w, l, proj, abs_of(r.v_in[proj]), r.y_mag[proj]);
  }
  return r;
}

// v: exact +0 past each token's rank (and for tokens without adapter), close values below it.
void expect_v_matches(const Problem& p, const Layout& l, int32_t proj,
                      const std::vector<float>& got, const std::vector<float>& ref,
                      const std::vector<float>& mag) {
  ASSERT_EQ(got.size(), ref.size());
  size_t not_zero = 0, wrong = 0, first_wrong = SIZE_MAX;
  double d2 = 0, r2 = 0;
  for (int32_t t = 0; t < l.num_tokens; ++t) {
    const int32_t rank = token_rank(p, l, t, proj);
    for (int32_t j = 0; j < p.max_rank; ++j) {
      const size_t i = static_cast<size_t>(t) * p.max_rank + j;
      if (j >= rank) {
        not_zero += std::bit_cast<uint32_t>(got[i]) != 0;
        continue;
      }
      const double d = double{got[i]} - ref[i];
      if (!(std::fabs(d) <= 1e-3 * mag[i] + 1e-6)) {
        if (wrong++ == 0) first_wrong = i;
      }
      d2 += d * d;
      r2 += double{ref[i]} * ref[i];
    }
  }
  EXPECT_EQ(not_zero, 0u) << "v elements past rank (or without adapter) are not +0";
  EXPECT_EQ(wrong, 0u) << "first at " << first_wrong << ": got " << (wrong ? got[first_wrong] : 0.f)
                       << " want " << (wrong ? ref[first_wrong] : 0.f);
  ASSERT_GT(r2, 0.0);
  EXPECT_LT(std::sqrt(d2 / r2), 1e-2);
}

// One fused expand: projections `projs` side by side in rows of `stride`, starting at `offsets`.
struct FusedOut {
  std::vector<int32_t> projs;
  std::vector<int64_t> offsets;
  int64_t stride;
};

// Packs (proj 0, proj 1, ...) in the given order with `gap` poisoned columns after each.
FusedOut fused_out(const Problem& p, std::vector<int32_t> projs, int64_t gap) {
  FusedOut f{std::move(projs), {}, 0};
  for (int32_t proj : f.projs) {
    f.offsets.push_back(f.stride);
    f.stride += p.spec.out_dim_of(proj) + gap;
  }
  return f;
}

// y0 as uploaded: the reference's values, the poison where nothing may write.
template <typename T>
std::vector<T> poisoned_y0(const Problem& p, const Layout& l, const FusedOut& f,
                           const Reference& r) {
  std::vector<T> y(static_cast<size_t>(l.num_tokens) * f.stride, from_bits<T>(kSentinelT));
  for (size_t i = 0; i < f.projs.size(); ++i) {
    const int32_t proj = f.projs[i];
    const int64_t od = p.spec.out_dim_of(proj);
    for (int32_t t = 0; t < l.num_tokens; ++t) {
      if (token_rank(p, l, t, proj) == 0) continue;
      for (int64_t n = 0; n < od; ++n) {
        y[t * f.stride + f.offsets[i] + n] = Elem<T>::from(r.y0[proj][t * od + n]);
      }
    }
  }
  return y;
}

// y: the poison where nothing may write; y0 + delta in each projection's columns.
template <typename T>
void expect_y_matches(const Problem& p, const Layout& l, const FusedOut& f,
                      const std::vector<T>& got, const Reference& r) {
  ASSERT_EQ(got.size(), static_cast<size_t>(l.num_tokens) * f.stride);
  std::vector<bool> owned(got.size(), false);
  for (size_t i = 0; i < f.projs.size(); ++i) {
    const int32_t proj = f.projs[i];
    SCOPED_TRACE("expand proj " + std::to_string(proj));
    const int64_t od = p.spec.out_dim_of(proj);
    size_t wrong = 0, first_wrong = SIZE_MAX;
    double d2 = 0, delta2 = 0;
    for (int32_t t = 0; t < l.num_tokens; ++t) {
      if (token_rank(p, l, t, proj) == 0) continue;
      for (int64_t n = 0; n < od; ++n) {
        const size_t gi = static_cast<size_t>(t) * f.stride + f.offsets[i] + n;
        const size_t ri = static_cast<size_t>(t) * od + n;
        owned[gi] = true;
        const double g = Elem<T>::to(got[gi]), want = r.y[proj][ri];
        const double d = g - want;
        if (!(std::fabs(d) <=
              Elem<T>::kRelRound * std::fabs(want) + 1e-4 * r.y_mag[proj][ri] + 1e-6)) {
          if (wrong++ == 0) first_wrong = ri;
        }
        d2 += d * d;
        delta2 += (want - r.y0[proj][ri]) * (want - r.y0[proj][ri]);
      }
    }
    EXPECT_EQ(wrong, 0u) << "first at " << first_wrong << " (token " << first_wrong / od << ")";
    ASSERT_GT(delta2, 0.0);
    EXPECT_LT(std::sqrt(d2 / delta2), 1e-2);
  }
  size_t touched_untouchable = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    touched_untouchable += !owned[i] && bits_of(got[i]) != kSentinelT;
  }
  EXPECT_EQ(touched_untouchable, 0u) << "elements no module owns were written";
}

struct WidthCase {
  int64_t in_dim, out_dim, page_elems;
  int64_t kv_out_dim;  // projections 1 and 2 (k, v): GQA's narrow outputs; 0 = out_dim
};

// Rows span pages almost everywhere; 100 is not a multiple of 8, nor is page size 4100: the scalar
// paths (shrink for in_dim 100, expand for out_dim 100).
#ifdef QUILT_CUDA_SIM
// 272 columns: three 128-column sub-tiles of a tensor-core tile, the last one partial.
constexpr WidthCase kWidths[] = {{64, 272, 48, 40}, {100, 176, 40, 24}, {256, 100, 256, 0}};
#else
// 4096 / 11008 are Llama-7B's hidden and MLP widths; 1024 a GQA k/v width at hidden 4096.
constexpr WidthCase kWidths[] = {{32, 64, 16, 0},        {64, 32, 64, 0},
                                 {176, 100, 48, 0},      {100, 176, 40, 24},
                                 {4096, 11008, 1024, 0}, {11008, 4096, 4096, 1024},
                                 {4096, 4096, 4100, 0},  {4096, 4096, 4096, 1024}};
#endif

// Mixed ranks per (slot, proj), 0 included.
ProblemSpec spec_for(const WidthCase& w, uint64_t seed, RoundFn round) {
  ProblemSpec s{w.in_dim, w.out_dim, w.page_elems, {}, seed, round};
#ifdef QUILT_CUDA_SIM
  // Rank 256 makes every launch 4x wider: it gets a test of its own (Rank256) in the simulator.
  s.ranks = {{16, 8, 0}, {1, 64, 1}, {8, 16, 4}, {64, 0, 16}, {16, 1, 8}};
#else
  s.ranks = {{16, 8, 0}, {128, 64, 128}, {1, 4, 1}, {64, 0, 16}, {8, 16, 4}, {256, 1, 0}};
#endif
  if (w.kv_out_dim > 0) s.proj_out_dim = {0, w.kv_out_dim, w.kv_out_dim};
  return s;
}

constexpr LoraPath kPaths[] = {LoraPath::kAuto, LoraPath::kCudaCores, LoraPath::kTensorCores};
const char* path_name(LoraPath path) {
  switch (path) {
    case LoraPath::kAuto:
      return "auto";
    case LoraPath::kCudaCores:
      return "cuda_cores";
    case LoraPath::kTensorCores:
      return "tensor_cores";
  }
  return "?";
}

struct NamedLayout {
  const char* name;
  Layout layout;
  bool segments;
};

// Long segments (tensor cores, with partial tiles) and short ones (CUDA cores) in one launch,
// empty segments, slot -1, repeated slots; then decode-shaped batches.
std::vector<NamedLayout> layouts(int32_t num_slots, uint64_t seed) {
#ifdef QUILT_CUDA_SIM
  const Layout mixed = segment_layout(
      {{1, 17}, {-1, 2}, {0, 1}, {2, 0}, {4, 1}, {3, 2}, {4, 16}, {2, 1}});  // 40 tokens
  constexpr int32_t kDecode = 12;
#else
  const Layout mixed = segment_layout({{1, 11},
                                       {-1, 3},
                                       {0, 40},
                                       {2, 0},
                                       {5, 1},
                                       {3, 1},
                                       {4, 17},
                                       {2, 2},
                                       {-1, 1},
                                       {1, 4},
                                       {0, 33},
                                       {5, 64}});
  constexpr int32_t kDecode = 48;
#endif
  std::vector<std::pair<int32_t, int32_t>> singles;
  for (int32_t s : random_slots(kDecode, num_slots, seed)) singles.push_back({s, 1});
  return {
      {"sgmv_mixed_long_and_short", mixed, true},
      {"bgmv_sorted", per_token_layout(mixed.token_slots), false},
      {"sgmv_single_token_segments", segment_layout(singles), true},
      {"bgmv_unsorted", per_token_layout(random_slots(kDecode + 3, num_slots, seed + 1)), false}};
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

// Everything one layout needs on the device, with the CPU reference.
template <typename T>
struct Case {
  Case(const Problem& p, const NamedLayout& nl, uint64_t seed)
      : p(p),
        l(nl.layout),
        x(random_values(static_cast<size_t>(l.num_tokens) * p.spec.in_dim, 1.f, seed,
                        Elem<T>::round)),
        r(make_reference<T>(p, l, x, seed + 1)),
        dl(l),
        dx(to_elems<T>(x)),
        segments(nl.segments) {}

  LoraBatch batch() const { return dl.batch(p.max_rank, segments); }

  // Shrink of q, k, v fused; checks every v.
  void check_shrink(const PagedLoraWeights<T>& w, LoraPath path, int32_t split_k) {
    ShrinkParams<T> sp{w,         batch(), dx.get(), p.spec.in_dim, kLayer,
                       kNumProjs, {},      {},       path,          split_k};
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
      expect_v_matches(p, l, kProjs[i], got, r.v[i], r.v_mag[i]);
    }
  }

  // Expand of f.projs fused into one row; checks the whole of y.
  void check_expand(const PagedLoraWeights<T>& w, LoraPath path, const FusedOut& f) {
    std::vector<DeviceBuffer<float>> dv;
    ExpandParams<T> ep{w,       batch(),  kLayer, static_cast<int32_t>(f.projs.size()),
                       {},      {},       {},     {},
                       nullptr, f.stride, path};
    for (size_t i = 0; i < f.projs.size(); ++i) {
      dv.emplace_back(r.v_in[f.projs[i]]);
      ASSERT_TRUE(dv.back().ok());
      ep.projs[i] = f.projs[i];
      ep.v[i] = dv.back().get();
      ep.out_dim[i] = p.spec.out_dim_of(f.projs[i]);
      ep.col_offset[i] = f.offsets[i];
    }
    DeviceBuffer<T> dy(poisoned_y0<T>(p, l, f, r));
    ASSERT_TRUE(dy.ok());
    ep.y = dy.get();
    ASSERT_EQ(expand_cuda(ep, nullptr), cudaSuccess);
    ASSERT_EQ(QUILT_CUDA_CHECK(cudaDeviceSynchronize()), cudaSuccess);
    std::vector<T> got;
    ASSERT_EQ(dy.copy_to_host(got), cudaSuccess);
    expect_y_matches<T>(p, l, f, got, r);
  }

  const Problem& p;
  const Layout& l;
  std::vector<float> x;
  Reference r;
  DeviceLayout dl;
  DeviceBuffer<T> dx;
  bool segments;
};

// Every layout and path on one problem: shrink fused over q, k, v (auto split-K), expand of q, k,
// v fused into one row (with poisoned gaps, k and v narrow where the width case says so), and
// expand of one projection alone into rows of its own width.
template <typename T>
void check_problem(const Problem& p, uint64_t seed) {
  DeviceWeights<T> dw(p);
  ASSERT_TRUE(dw.ok());
  const FusedOut qkv = fused_out(p, {0, 1, 2}, /*gap=*/8);
  const FusedOut k_alone = fused_out(p, {1}, /*gap=*/0);
  for (const NamedLayout& nl : layouts(p.num_slots, seed + 1)) {
    SCOPED_TRACE(nl.name);
    Case<T> c(p, nl, seed + 2);
    ASSERT_TRUE(c.dl.ok() && c.dx.ok());
    for (LoraPath path : kPaths) {
      SCOPED_TRACE(path_name(path));
      c.check_shrink(dw.get(), path, /*split_k=*/0);
      c.check_expand(dw.get(), path, qkv);
      if (path == LoraPath::kAuto) c.check_expand(dw.get(), path, k_alone);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

template <typename T>
void check_width(const WidthCase& w, uint64_t seed) {
  check_problem<T>(make_problem(spec_for(w, seed, Elem<T>::round)), seed);
}

TYPED_TEST(SgmvCuda, MatchesCpuReferenceOnEveryWidthLayoutAndPath) {
  QUILT_SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 1000;
  for (const WidthCase& w : kWidths) {
    SCOPED_TRACE(std::to_string(w.in_dim) + "x" + std::to_string(w.out_dim) + " page " +
                 std::to_string(w.page_elems) + " kv " + std::to_string(w.kv_out_dim));
    check_width<TypeParam>(w, seed);
    seed += 100;
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Rank 256 next to small ranks in one launch (four row chunks of A, four rank chunks of v).
TYPED_TEST(SgmvCuda, Rank256MatchesCpuReference) {
  QUILT_SKIP_WITHOUT_CUDA_DEVICE();
  using T = TypeParam;
  // As many slots as layouts() uses.
  const std::vector<std::array<int32_t, kNumProjs>> ranks = {{256, 1, 8}, {8, 256, 0}, {1, 16, 64},
                                                             {16, 8, 0},  {64, 0, 16}, {4, 4, 4}};
#ifdef QUILT_CUDA_SIM
  const ProblemSpec s{128, 200, 64, ranks, 91, Elem<T>::round};
#else
  const ProblemSpec s{4096, 4096, 4096, ranks, 91, Elem<T>::round};
#endif
  check_problem<T>(make_problem(s), 92);
}

// Split-K: explicit slice counts (1 = plain stores; others add into the zeroed v), on a batch of
// one token (where auto split-K kicks in) and on the mixed layout, both paths.
TYPED_TEST(SgmvCuda, SplitKMatchesCpuReference) {
  QUILT_SKIP_WITHOUT_CUDA_DEVICE();
  using T = TypeParam;
#ifdef QUILT_CUDA_SIM
  const WidthCase w{320, 64, 64, 0};
#else
  const WidthCase w{4096, 1024, 1024, 0};
#endif
  const Problem p = make_problem(spec_for(w, 55, Elem<T>::round));
  DeviceWeights<T> dw(p);
  ASSERT_TRUE(dw.ok());
  const NamedLayout one_token{"one_token", segment_layout({{1, 1}}), true};
  const NamedLayout one_bgmv{"one_token_bgmv", per_token_layout({4}), false};
  for (const NamedLayout& nl : {one_token, one_bgmv, layouts(p.num_slots, 56)[0]}) {
    SCOPED_TRACE(nl.name);
    Case<T> c(p, nl, 57);
    ASSERT_TRUE(c.dl.ok() && c.dx.ok());
    for (int32_t split : {0, 1, 2, 3, 1000}) {
      SCOPED_TRACE("split_k " + std::to_string(split));
      for (LoraPath path : {LoraPath::kAuto, LoraPath::kTensorCores}) {
        SCOPED_TRACE(path_name(path));
        c.check_shrink(dw.get(), path, split);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

// Captured into a graph and replayed, the launches give the same results: no host sync, no
// allocation and no host read inside them (split-K's memset included).
TYPED_TEST(SgmvCuda, LaunchesAreGraphCapturable) {
  QUILT_SKIP_WITHOUT_CUDA_DEVICE();
  using T = TypeParam;
#ifdef QUILT_CUDA_SIM
  const WidthCase w{256, 96, 64, 0};
#else
  const WidthCase w{4096, 1000, 1024, 0};
#endif
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
  const FusedOut f = fused_out(p, {0}, 0);
  DeviceBuffer<T> dy(poisoned_y0<T>(p, l, f, r));
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
                           {dv0.get(), dv1.get(), dv2.get()},
                           LoraPath::kAuto,
                           /*split_k=*/2};
  const ExpandParams<T> ep{dw.get(),     batch,       kLayer, 1,        {0},
                           {dvin.get()}, {w.out_dim}, {0},    dy.get(), w.out_dim};

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
    expect_v_matches(p, l, kProjs[i], got, r.v[i], r.v_mag[i]);
  }
  std::vector<T> got_y;
  ASSERT_EQ(dy.copy_to_host(got_y), cudaSuccess);
  expect_y_matches<T>(p, l, f, got_y, r);
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
  sp.split_k = -1;
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);
  sp.split_k = 0;
  sp.batch.token_slots = nullptr;  // BGMV without slots
  EXPECT_EQ(shrink_cuda(sp, nullptr), cudaErrorInvalidValue);

  ExpandParams<__nv_bfloat16> ep{w, batch, 0, 1, {0}, {v}, {0}, {0}, pool, 8};  // out_dim 0
  EXPECT_EQ(expand_cuda(ep, nullptr), cudaErrorInvalidValue);
  ep.out_dim[0] = 8;
  ep.projs[0] = -1;
  EXPECT_EQ(expand_cuda(ep, nullptr), cudaErrorInvalidValue);
  ep.projs[0] = 0;
  ep.col_offset[0] = 4;  // 4 + 8 > y_row_stride 8
  EXPECT_EQ(expand_cuda(ep, nullptr), cudaErrorInvalidValue);
  ep.col_offset[0] = 0;
  ep.num_projs = 2;  // projs[1] = 0 but v[1] is null
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
  EXPECT_EQ(expand_cuda(ExpandParams<__half>{w, empty, 0, 1, {0}, {v}, {8}, {0}, pool, 8}, nullptr),
            cudaSuccess);
  // An empty step may leave its token tables null: nothing reads them.
  const LoraBatch null_tables{0, nullptr, 0, nullptr, nullptr, 4};
  EXPECT_EQ(shrink_cuda(ShrinkParams<__half>{w, null_tables, pool, 8, 0, 1, {0}, {v}}, nullptr),
            cudaSuccess);
  EXPECT_EQ(
      expand_cuda(ExpandParams<__half>{w, null_tables, 0, 1, {0}, {v}, {8}, {0}, pool, 8}, nullptr),
      cudaSuccess);
}

}  // namespace
}  // namespace quilt::kernels::sgmv
