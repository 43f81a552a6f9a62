// The LoRA op (shrink + expand, one projection, in = out = h, bf16) on Punica's four workloads,
// Quilt's SGMV/BGMV kernels against two cuBLAS baselines, next to a device-to-device copy.
//
// usage: lora_bench [--h 4096] [--max-tokens 64] [--ranks 8,16,32,64] [--repeats 100]
//                   [--warmup 10] [--copy-mib 256] [--out DIR] [--sim]
//   --sim: the small shapes the CUDA simulator runs in seconds (h 256, up to 8 tokens, ranks 8 and
//          16, one repeat, no warmup, 1 MiB copy); flags after it still override.
//
// Per point (workload, tokens 1, 2, 4 .. max, rank):
//   sgmv:  shrink_cuda + expand_cuda with the batch as segments of tokens sharing an adapter;
//   bgmv:  the same kernels with one slot per token;
//   loop:  per adapter group, one cuBLAS GEMM for shrink and one for expand (the group's tokens
//          are contiguous: the batch is sorted by adapter, so gathering them is an offset);
//   bmm:   cublasGemmBatchedEx over per-token pointers to the token's adapter (the gather), for
//          shrink and for expand.
// The baselines keep the rank-sized intermediate in bf16 (a GEMM's A and B share one dtype); the
// kernels keep it in float32. Each method's y is checked once against a double-precision CPU
// reference before it is timed. Times are CUDA events around one op, median of --repeats after
// --warmup; GB/s counts the bytes the op must move: the adapters' A and Bᵀ it touches, x, and y
// read and written. The copy's GB/s counts its bytes read and written, as bandwidthTest does.
//
// Writes lora_bench.csv and lora_bench.md into --out (and the markdown to stdout); exits 1 if a
// check failed or a CUDA call did.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/lora_workloads.h"
#include "kernels/common/cuda_check.h"
#include "kernels/sgmv/sgmv.h"
#include "kernels/sgmv/sgmv_cuda.h"

namespace quilt::bench {
namespace {

using bf16 = __nv_bfloat16;
using kernels::DeviceBuffer;
namespace sgmv = kernels::sgmv;

constexpr float kScale = 0.5f;  // LoRA alpha / r: not 1, so a method that drops it shows
constexpr uint64_t kSeed = 20261125;

struct Options {
  int64_t h = 4096;
  int32_t max_tokens = 64;
  std::vector<int32_t> ranks = {8, 16, 32, 64};
  int repeats = 100;
  int warmup = 10;
  int64_t copy_mib = 256;
  std::string out;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "lora_bench: %s\n", msg.c_str());
  std::exit(1);
}

#define BENCH_CUDA(expr)                                                                          \
  do {                                                                                            \
    const cudaError_t bench_err_ = QUILT_CUDA_CHECK(expr);                                        \
    if (bench_err_ != cudaSuccess) die(std::string(#expr) + ": " + cudaGetErrorName(bench_err_)); \
  } while (0)

#define BENCH_CUBLAS(expr)                                                           \
  do {                                                                               \
    const cublasStatus_t bench_st_ = (expr);                                         \
    if (bench_st_ != CUBLAS_STATUS_SUCCESS) {                                        \
      die(std::string(#expr) + ": " + cublasGetStatusName(bench_st_) + " at line " + \
          std::to_string(__LINE__));                                                 \
    }                                                                                \
  } while (0)

std::vector<int32_t> parse_list(const std::string& s) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--sim") {
      o.h = 256;
      o.max_tokens = 8;
      o.ranks = {8, 16};
      o.repeats = 1;
      o.warmup = 0;
      o.copy_mib = 1;
    } else if (a == "--h") {
      o.h = std::stoll(value());
    } else if (a == "--max-tokens") {
      o.max_tokens = std::stoi(value());
    } else if (a == "--ranks") {
      o.ranks = parse_list(value());
    } else if (a == "--repeats") {
      o.repeats = std::stoi(value());
    } else if (a == "--warmup") {
      o.warmup = std::stoi(value());
    } else if (a == "--copy-mib") {
      o.copy_mib = std::stoll(value());
    } else if (a == "--out") {
      o.out = value();
    } else {
      die("unknown argument " + a + " (see the usage at the top of bench/lora_bench.cu)");
    }
  }
  if (o.h < 8 || o.h % 8 != 0 || o.max_tokens < 1 || o.repeats < 1 || o.warmup < 0 ||
      o.ranks.empty() || o.copy_mib < 1) {
    die("bad arguments: h must be a positive multiple of 8, the rest positive");
  }
  for (int32_t r : o.ranks) {
    if (r < 1) die("ranks must be positive");
  }
  return o;
}

// Deterministic uniform values in [-bound, bound), rounded to bf16 once so host and device agree.
std::vector<float> random_bf16_values(size_t n, float bound, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> dist(-bound, bound);
  std::vector<float> v(n);
  for (float& e : v) e = __bfloat162float(__float2bfloat16_rn(dist(rng)));
  return v;
}

std::vector<bf16> to_bf16(const std::vector<float>& f) {
  std::vector<bf16> out(f.size());
  for (size_t i = 0; i < f.size(); ++i) out[i] = __float2bfloat16_rn(f[i]);
  return out;
}

// Median milliseconds of `repeats` runs of op, each between two events on `stream`.
template <typename Op>
double median_ms(cudaStream_t stream, const Options& o, Op&& op) {
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < o.warmup; ++i) op();
  std::vector<float> ms(static_cast<size_t>(o.repeats));
  for (float& m : ms) {
    BENCH_CUDA(cudaEventRecord(start, stream));
    op();
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    BENCH_CUDA(cudaEventElapsedTime(&m, start, stop));
  }
  BENCH_CUDA(cudaEventDestroy(start));
  BENCH_CUDA(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// GB/s of a device-to-device copy of copy_mib MiB (bytes read + bytes written).
double copy_gbps(cudaStream_t stream, const Options& o) {
  const size_t bytes = static_cast<size_t>(o.copy_mib) << 20;
  DeviceBuffer<unsigned char> src(bytes), dst(bytes);
  if (!src.ok() || !dst.ok()) die("cannot allocate the copy buffers");
  BENCH_CUDA(cudaMemsetAsync(src.get(), 1, bytes, stream));
  const double ms = median_ms(stream, o, [&] {
    BENCH_CUDA(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream));
  });
  return 2.0 * static_cast<double>(bytes) / (ms * 1e6);
}

// Every adapter of one rank, in a page pool laid out as sgmv.h says: each matrix (A: rank × h,
// Bᵀ: rank × h, row-major) flat across its own pages. The pages of a matrix are consecutive, so the
// same memory is also a plain contiguous matrix for the cuBLAS baselines.
struct AdapterPool {
  AdapterPool(int32_t num_adapters, int32_t rank, int64_t h)
      : rank(rank),
        h(h),
        page_elems(h * 8),
        pages_per_matrix(sgmv::pages_for_matrix(rank, h, h * 8)) {
    const int64_t num_pages = int64_t{num_adapters} * 2 * pages_per_matrix;
    // A scaled by 1/sqrt(h), Bᵀ by 1/sqrt(rank): v and the delta stay O(1). The tails of the
    // matrices' last pages hold NaN, so a kernel that reads past a matrix fails the check.
    host.assign(static_cast<size_t>(num_pages * page_elems), std::nanf(""));
    std::vector<int32_t> pages(static_cast<size_t>(num_pages));
    for (int64_t p = 0; p < num_pages; ++p) pages[p] = static_cast<int32_t>(p);
    std::vector<sgmv::LoraModuleRef> modules(static_cast<size_t>(num_adapters));
    for (int32_t s = 0; s < num_adapters; ++s) {
      const auto a_first = static_cast<int32_t>(int64_t{2} * s * pages_per_matrix);
      const auto b_first = static_cast<int32_t>(a_first + pages_per_matrix);
      modules[s] = {rank, kScale, a_first, b_first};
      const size_t elems = static_cast<size_t>(rank * h);
      const auto a = random_bf16_values(elems, 1.0f / std::sqrt(float(h)), kSeed + 2 * s);
      const auto bt = random_bf16_values(elems, 1.0f / std::sqrt(float(rank)), kSeed + 2 * s + 1);
      std::copy(a.begin(), a.end(), host.begin() + a_first * page_elems);
      std::copy(bt.begin(), bt.end(), host.begin() + b_first * page_elems);
      a_offsets.push_back(a_first * page_elems);
      b_offsets.push_back(b_first * page_elems);
    }
    pool = DeviceBuffer<bf16>(to_bf16(host));
    page_indices = DeviceBuffer<int32_t>(pages);
    module_refs = DeviceBuffer<sgmv::LoraModuleRef>(modules);
    if (!pool.ok() || !page_indices.ok() || !module_refs.ok()) die("cannot upload the adapters");
  }

  sgmv::PagedLoraWeights<bf16> weights() const {
    return {pool.get(), page_elems, page_indices.get(), module_refs.get(), 1, 1};
  }
  const bf16* a(int32_t s) const { return pool.get() + a_offsets[s]; }
  const bf16* bt(int32_t s) const { return pool.get() + b_offsets[s]; }
  const float* a_host(int32_t s) const { return host.data() + a_offsets[s]; }
  const float* bt_host(int32_t s) const { return host.data() + b_offsets[s]; }

  int32_t rank;
  int64_t h, page_elems, pages_per_matrix;
  std::vector<float> host;
  std::vector<int64_t> a_offsets, b_offsets;
  DeviceBuffer<bf16> pool;
  DeviceBuffer<int32_t> page_indices;
  DeviceBuffer<sgmv::LoraModuleRef> module_refs;
};

// The activations, shared by every point: x and y for max_tokens tokens, y's starting values, and
// the intermediates (float32 for the kernels, bf16 for the baselines).
struct Activations {
  Activations(const Options& o)
      : x_host(random_bf16_values(static_cast<size_t>(o.max_tokens * o.h), 1.0f, kSeed + 1)),
        y0_host(random_bf16_values(x_host.size(), 1.0f, kSeed + 2)),
        x(to_bf16(x_host)),
        y0(to_bf16(y0_host)),
        y(x_host.size()) {
    const int32_t max_rank = *std::max_element(o.ranks.begin(), o.ranks.end());
    v = DeviceBuffer<float>(static_cast<size_t>(o.max_tokens) * max_rank);
    v_bf16 = DeviceBuffer<bf16>(static_cast<size_t>(o.max_tokens) * max_rank);
    if (!x.ok() || !y0.ok() || !y.ok() || !v.ok() || !v_bf16.ok()) die("cannot allocate x/y/v");
  }
  std::vector<float> x_host, y0_host;
  DeviceBuffer<bf16> x, y0, y;
  DeviceBuffer<float> v;
  DeviceBuffer<bf16> v_bf16;
};

struct Point {
  Workload workload;
  int32_t tokens, rank, adapters;
  double bytes;
  double sgmv_us, bgmv_us, loop_us, bmm_us;
  double error[4];  // per method (sgmv, bgmv, loop, bmm): max |y - ref| / tolerance; ≤ 1 passes

  bool ok() const {
    return std::all_of(error, error + 4, [](double e) { return e <= 1.0; });
  }
  // "ok", or the failing methods with their error ratios: "FAIL(sgmv 27.6 bgmv 3.1)".
  std::string check() const {
    static constexpr const char* kMethods[4] = {"sgmv", "bgmv", "loop", "bmm"};
    if (ok()) return "ok";
    std::string s = "FAIL(";
    for (int i = 0; i < 4; ++i) {
      if (error[i] <= 1.0) continue;
      char buf[48];
      std::snprintf(buf, sizeof(buf), "%s%s %.3g", s.size() > 5 ? " " : "", kMethods[i], error[i]);
      s += buf;
    }
    return s + ")";
  }
};

// y = y0 + scale · (x Aᵀ) Bᵀ per token, in double, from the bf16 values the device holds.
std::vector<double> reference_y(const AdapterPool& ap, const Activations& act,
                                const std::vector<int32_t>& slots, int64_t h) {
  const auto n = static_cast<int32_t>(slots.size());
  std::vector<double> y(static_cast<size_t>(n * h));
  std::vector<double> v(static_cast<size_t>(ap.rank));
  for (int32_t t = 0; t < n; ++t) {
    const float* x = act.x_host.data() + t * h;
    const float* a = ap.a_host(slots[t]);
    const float* bt = ap.bt_host(slots[t]);
    for (int32_t j = 0; j < ap.rank; ++j) {
      double s = 0;
      for (int64_t k = 0; k < h; ++k) s += double{x[k]} * a[j * h + k];
      v[j] = s;
    }
    for (int64_t c = 0; c < h; ++c) {
      double s = 0;
      for (int32_t j = 0; j < ap.rank; ++j) s += v[j] * bt[j * h + c];
      y[t * h + c] = act.y0_host[t * h + c] + kScale * s;
    }
  }
  return y;
}

// Runs op once from y = y0 and returns max |y - ref| / tol, tol = 2^-7·|ref| + 2^-7: one bf16
// rounding of y (≤ 2^-8 relative) plus the baselines' bf16 intermediate, with room to spare.
template <typename Op>
double check_once(cudaStream_t stream, Activations& act, const std::vector<double>& ref, Op&& op) {
  BENCH_CUDA(
      cudaMemcpyAsync(act.y.get(), act.y0.get(), act.y.bytes(), cudaMemcpyDeviceToDevice, stream));
  op();
  BENCH_CUDA(cudaStreamSynchronize(stream));
  std::vector<bf16> y(ref.size());
  BENCH_CUDA(cudaMemcpy(y.data(), act.y.get(), y.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double got = __bfloat162float(y[i]);
    const double tol = std::ldexp(1.0, -7) * (std::fabs(ref[i]) + 1.0);
    const double err = std::isfinite(got) ? std::fabs(got - ref[i]) / tol : 1e30;
    worst = std::max(worst, err);
  }
  return worst;
}

Point run_point(cudaStream_t stream, cublasHandle_t blas, const Options& o, const AdapterPool& ap,
                Activations& act, Workload w, int32_t n) {
  const std::vector<int32_t> slots = token_adapters(w, n, kSeed + n);
  std::vector<int32_t> starts = {0}, seg_slots;
  for (int32_t t = 0; t < n; ++t) {
    if (t > 0 && slots[t] == slots[t - 1]) continue;
    if (t > 0) starts.push_back(t);
    seg_slots.push_back(slots[t]);
  }
  starts.push_back(n);
  const auto num_segments = static_cast<int32_t>(seg_slots.size());
  DeviceBuffer<int32_t> d_slots(slots), d_starts(starts), d_seg_slots(seg_slots);
  if (!d_slots.ok() || !d_starts.ok() || !d_seg_slots.ok()) die("cannot upload the batch");

  const int64_t h = o.h;
  const int32_t r = ap.rank;
  sgmv::LoraBatch segments{n, d_slots.get(), num_segments, d_starts.get(), d_seg_slots.get(), r};
  sgmv::LoraBatch per_token{n, d_slots.get(), 0, nullptr, nullptr, r};
  auto kernels_op = [&](const sgmv::LoraBatch& batch) {
    sgmv::ShrinkParams<bf16> sp{};
    sp.weights = ap.weights();
    sp.batch = batch;
    sp.x = act.x.get();
    sp.in_dim = h;
    sp.layer = 0;
    sp.num_projs = 1;
    sp.projs[0] = 0;
    sp.v[0] = act.v.get();
    sgmv::ExpandParams<bf16> ep{};
    ep.weights = ap.weights();
    ep.batch = batch;
    ep.layer = 0;
    ep.num_projs = 1;
    ep.projs[0] = 0;
    ep.v[0] = act.v.get();
    ep.out_dim[0] = h;
    ep.col_offset[0] = 0;
    ep.y = act.y.get();
    ep.y_row_stride = h;
    BENCH_CUDA(sgmv::shrink_cuda(sp, stream));
    BENCH_CUDA(sgmv::expand_cuda(ep, stream));
  };

  const float one = 1.0f, zero = 0.0f, scale = kScale;
  auto loop_op = [&] {
    for (int32_t g = 0; g < num_segments; ++g) {
      const int32_t b = starts[g], count = starts[g + 1] - starts[g];
      bf16* vg = act.v_bf16.get() + int64_t{b} * r;
      // v_g (r × count, column-major) = A_s(h × r, col-major view of row-major r × h)ᵀ · x_g.
      BENCH_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, r, count, static_cast<int>(h), &one,
                                ap.a(seg_slots[g]), CUDA_R_16BF, static_cast<int>(h),
                                act.x.get() + b * h, CUDA_R_16BF, static_cast<int>(h), &zero, vg,
                                CUDA_R_16BF, r, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      // y_g (h × count) += scale · Bᵀ_s(h × r view) · v_g.
      BENCH_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(h), count, r,
                                &scale, ap.bt(seg_slots[g]), CUDA_R_16BF, static_cast<int>(h), vg,
                                CUDA_R_16BF, r, &one, act.y.get() + b * h, CUDA_R_16BF,
                                static_cast<int>(h), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  };

  // The gather: per-token pointers to the token's adapter, built once per step like the kernels'
  // metadata, so not timed.
  std::vector<const void*> pa(n), pb(n), px(n), pv_in(n);
  std::vector<void*> pv(n), py(n);
  for (int32_t t = 0; t < n; ++t) {
    pa[t] = ap.a(slots[t]);
    pb[t] = ap.bt(slots[t]);
    px[t] = act.x.get() + t * h;
    pv[t] = act.v_bf16.get() + int64_t{t} * r;
    pv_in[t] = pv[t];
    py[t] = act.y.get() + t * h;
  }
  DeviceBuffer<const void*> d_pa(pa), d_pb(pb), d_px(px), d_pv_in(pv_in);
  DeviceBuffer<void*> d_pv(pv), d_py(py);
  auto bmm_op = [&] {
    BENCH_CUBLAS(cublasGemmBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, r, 1, static_cast<int>(h),
                                     &one, d_pa.get(), CUDA_R_16BF, static_cast<int>(h), d_px.get(),
                                     CUDA_R_16BF, static_cast<int>(h), &zero, d_pv.get(),
                                     CUDA_R_16BF, r, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    BENCH_CUBLAS(cublasGemmBatchedEx(
        blas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(h), 1, r, &scale, d_pb.get(), CUDA_R_16BF,
        static_cast<int>(h), d_pv_in.get(), CUDA_R_16BF, r, &one, d_py.get(), CUDA_R_16BF,
        static_cast<int>(h), n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };

  Point p{w, n, r, count_adapters(slots), 0, 0, 0, 0, 0, {}};
  p.bytes = (2.0 * p.adapters * r * h + 3.0 * n * h) * sizeof(bf16);  // A, Bᵀ; x; y read + write

  const std::vector<double> ref = reference_y(ap, act, slots, h);
  p.error[0] = check_once(stream, act, ref, [&] { kernels_op(segments); });
  p.error[1] = check_once(stream, act, ref, [&] { kernels_op(per_token); });
  p.error[2] = check_once(stream, act, ref, loop_op);
  p.error[3] = check_once(stream, act, ref, bmm_op);
  p.sgmv_us = 1e3 * median_ms(stream, o, [&] { kernels_op(segments); });
  p.bgmv_us = 1e3 * median_ms(stream, o, [&] { kernels_op(per_token); });
  p.loop_us = 1e3 * median_ms(stream, o, loop_op);
  p.bmm_us = 1e3 * median_ms(stream, o, bmm_op);
  return p;
}

// 1, 2, 4, ... below max_tokens, then max_tokens itself.
std::vector<int32_t> batch_sizes(int32_t max_tokens) {
  std::vector<int32_t> out;
  for (int32_t n = 1; n < max_tokens; n *= 2) out.push_back(n);
  out.push_back(max_tokens);
  return out;
}

double gbps(double bytes, double us) { return bytes / (us * 1e3); }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

void write_results(const Options& o, const std::string& device, double copy,
                   const std::vector<Point>& points) {
  std::ostringstream csv, md;
  csv << "workload,tokens,rank,h,adapters,bytes,sgmv_us,bgmv_us,loop_us,bmm_us,sgmv_gbps,"
         "bgmv_gbps,copy_gbps,sgmv_pct_copy,bgmv_pct_copy,best_baseline_us,check\n";
  md << "# LoRA op: shrink + expand, bf16, h = " << o.h << "\n\n"
     << "Device: " << device << ". Device-to-device copy: " << fmt("%.1f", copy)
     << " GB/s. Median of " << o.repeats << " runs after " << o.warmup
     << " warmup runs (CUDA events). GB/s counts adapter A and Bᵀ touched, x, y read + written.\n\n"
     << "| workload | tokens | rank | adapters | SGMV µs | BGMV µs | loop µs | bmm µs | SGMV GB/s "
        "| SGMV % of copy | check |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const Point& p : points) {
    const double best_base = std::min(p.loop_us, p.bmm_us);
    const std::string check = p.check();
    csv << workload_name(p.workload) << ',' << p.tokens << ',' << p.rank << ',' << o.h << ','
        << p.adapters << ',' << fmt("%.0f", p.bytes) << ',' << fmt("%.2f", p.sgmv_us) << ','
        << fmt("%.2f", p.bgmv_us) << ',' << fmt("%.2f", p.loop_us) << ',' << fmt("%.2f", p.bmm_us)
        << ',' << fmt("%.2f", gbps(p.bytes, p.sgmv_us)) << ','
        << fmt("%.2f", gbps(p.bytes, p.bgmv_us)) << ',' << fmt("%.2f", copy) << ','
        << fmt("%.1f", 100 * gbps(p.bytes, p.sgmv_us) / copy) << ','
        << fmt("%.1f", 100 * gbps(p.bytes, p.bgmv_us) / copy) << ',' << fmt("%.2f", best_base)
        << ',' << check << '\n';
    md << "| " << workload_name(p.workload) << " | " << p.tokens << " | " << p.rank << " | "
       << p.adapters << " | " << fmt("%.1f", p.sgmv_us) << " | " << fmt("%.1f", p.bgmv_us) << " | "
       << fmt("%.1f", p.loop_us) << " | " << fmt("%.1f", p.bmm_us) << " | "
       << fmt("%.1f", gbps(p.bytes, p.sgmv_us)) << " | "
       << fmt("%.1f", 100 * gbps(p.bytes, p.sgmv_us) / copy) << " | " << check << " |\n";
  }
  std::fputs(md.str().c_str(), stdout);
  if (o.out.empty()) return;
  std::filesystem::create_directories(o.out);
  std::ofstream(std::filesystem::path(o.out) / "lora_bench.csv") << csv.str();
  std::ofstream(std::filesystem::path(o.out) / "lora_bench.md") << md.str();
}

int run(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  int device = 0;
  BENCH_CUDA(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, device));
  cudaStream_t stream;
  BENCH_CUDA(cudaStreamCreate(&stream));
  cublasHandle_t blas;
  BENCH_CUBLAS(cublasCreate(&blas));
  BENCH_CUBLAS(cublasSetStream(blas, stream));

  const double copy = copy_gbps(stream, o);
  Activations act(o);
  std::vector<Point> points;
  for (int32_t r : o.ranks) {
    const AdapterPool ap(o.max_tokens, r, o.h);
    for (Workload w : kAllWorkloads) {
      for (int32_t n : batch_sizes(o.max_tokens)) {
        points.push_back(run_point(stream, blas, o, ap, act, w, n));
      }
    }
  }
  write_results(o, prop.name, copy, points);

  BENCH_CUBLAS(cublasDestroy(blas));
  BENCH_CUDA(cudaStreamDestroy(stream));
  const bool ok = std::all_of(points.begin(), points.end(), [](const Point& p) { return p.ok(); });
  if (!ok) std::fprintf(stderr, "lora_bench: a method's y differs from the CPU reference\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace quilt::bench

int main(int argc, char** argv) { return quilt::bench::run(argc, argv); }
