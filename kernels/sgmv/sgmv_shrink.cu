// LoRA shrink (x · Aᵀ → v) over paged adapter weights, SGMV and BGMV, fused over projections.
//
// Shape of the work: per token and projection, rank dot products of length in_dim. That is a skinny
// GEMV-like reduction bound by the bytes of A (decode) or, for long segments, by the FMAs; so
//   grid  = (token tiles, rank-row chunks, fused projections): tokens can be many, so they take x;
//   block = kWarps warps, each owning kRows rows of A for every token of the block's tile;
//   warp  = lanes stride in_dim by 16-byte vectors, accumulate in float32, reduce by shuffles.
// No shared memory and no barriers: warps are independent, which lets a warp whose rows lie past
// this slot's rank leave at once (ranks differ per slot; the grid is sized for the batch's max).
#include "kernels/sgmv/sgmv_common.cuh"

namespace quilt::kernels::sgmv {
namespace {

using detail::kVecElems;
using detail::kWarpSize;

// One warp: rows [row0, row0 + kRows) ∩ [0, rank) of A against tokens [t0, t0 + n), n ≤ kTokens.
template <typename T, int kVec, int kTokens, int kRows>
__device__ __forceinline__ void shrink_warp(const ShrinkParams<T>& p, const LoraModuleRef& m,
                                            int32_t rank, int32_t row0, int32_t t0, int32_t n,
                                            float* __restrict__ v) {
  const int lane = threadIdx.x % kWarpSize;
  const int32_t in_dim = static_cast<int32_t>(p.in_dim);
  const int32_t pe = static_cast<int32_t>(p.weights.page_elems);
  const int32_t pages_per_row = (in_dim + pe - 1) / pe;
  const T* __restrict__ pool = p.weights.pool;

  // Page lists of this warp's rows; rows past rank are clamped so the pointer stays meaningful,
  // and skipped below.
  const int32_t* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int32_t j = min(row0 + r, rank - 1);
    rows[r] = p.weights.page_indices + m.a_pages + static_cast<int64_t>(j) * pages_per_row;
  }
  const T* xs[kTokens];
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
    xs[tt] = p.x + static_cast<int64_t>(t0 + min(tt, n - 1)) * in_dim;
  }

  float acc[kTokens][kRows];
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[tt][r] = 0.f;
  }

  // A lane's k walks in_dim by kStride; its (page, offset) moves by the same step, so it is tracked
  // incrementally instead of dividing by page_elems every iteration. The page is the same for every
  // row (rows have one layout), so one (page, offset) serves all kRows rows. With page_elems a
  // multiple of kVec a vector never straddles two pages.
  constexpr int32_t kStride = kWarpSize * kVec;
  int32_t k = lane * kVec;
  int32_t page = k / pe;
  int32_t off = k - page * pe;
#pragma unroll 2
  for (; k < in_dim; k += kStride) {
    float xf[kTokens][kVec];
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt) {
      if (tt < n) {
        detail::load_ro<kVec>(xs[tt] + k, xf[tt]);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) xf[tt][e] = 0.f;
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (row0 + r < rank) {
        const int64_t base = static_cast<int64_t>(__ldg(rows[r] + page)) * pe + off;
        float af[kVec];
        detail::load_ro<kVec>(pool + base, af);
#pragma unroll
        for (int tt = 0; tt < kTokens; ++tt) {
          if (tt < n) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[tt][r] = fmaf(xf[tt][e], af[e], acc[tt][r]);
          }
        }
      }
    }
    off += kStride;
    while (off >= pe) {  // at most once when page_elems ≥ kStride, the expected case
      off -= pe;
      ++page;
    }
  }

  // Every lane ends with the full sums; a different lane stores each so the stores spread out.
  const int32_t max_rank = p.batch.max_rank;
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float s = detail::warp_sum(acc[tt][r]);
      if (tt < n && row0 + r < rank && lane == (tt * kRows + r) % kWarpSize) {
        v[static_cast<int64_t>(t0 + tt) * max_rank + row0 + r] = s;
      }
    }
  }
}

template <typename T, int kVec, int kTokens, int kRows, int kWarps>
__global__ void __launch_bounds__(kWarps* kWarpSize)
    shrink_kernel(const __grid_constant__ ShrinkParams<T> p) {
  const int32_t t_begin = static_cast<int32_t>(blockIdx.x) * kTokens;
  const int32_t t_end = min(t_begin + kTokens, p.batch.num_tokens);
  const int warp = threadIdx.x / kWarpSize;
  const int32_t row0 = (static_cast<int32_t>(blockIdx.y) * kWarps + warp) * kRows;
  const int32_t proj = p.projs[blockIdx.z];
  float* v = p.v[blockIdx.z];

  for (int32_t t = t_begin; t < t_end;) {
    const detail::TokenRun run = detail::find_run(p.batch, t, t_end);
    if (run.slot >= 0) {
      const LoraModuleRef m = detail::load_module(p.weights, run.slot, p.layer, proj);
      const int32_t rank = min(m.rank, p.batch.max_rank);
      if (row0 < rank) {  // warp-uniform: the shuffles inside see all 32 lanes
        shrink_warp<T, kVec, kTokens, kRows>(p, m, rank, row0, t, run.end - t, v);
      }
    }
    t = run.end;
  }
}

// Per-token blocks: a decode batch has few tokens, so 8 rows a block (4 warps × 2) keeps enough
// blocks in flight. Token tiles: 8 tokens share each A vector a warp loads.
struct PerTokenShape {
  static constexpr int kTokens = 1, kRows = 2, kWarps = 4;
};
struct TileShape {
  static constexpr int kTokens = kTileTokens, kRows = 2, kWarps = 4;
};

template <typename T, int kVec, typename Shape>
cudaError_t launch(const ShrinkParams<T>& p, cudaStream_t stream) {
  constexpr int kRowsPerBlock = Shape::kWarps * Shape::kRows;
  const int64_t row_blocks = detail::ceil_div(p.batch.max_rank, kRowsPerBlock);
  if (row_blocks > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.batch.num_tokens, Shape::kTokens)),
                  static_cast<unsigned>(row_blocks), static_cast<unsigned>(p.num_projs));
  shrink_kernel<T, kVec, Shape::kTokens, Shape::kRows, Shape::kWarps>
      <<<grid, Shape::kWarps * kWarpSize, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
bool args_ok(const ShrinkParams<T>& p) {
  if (!detail::weights_ok(p.weights) || !detail::batch_ok(p.batch)) return false;
  if (p.x == nullptr || p.in_dim < 1 || !detail::fits_i32(p.in_dim + detail::kSlack)) return false;
  if (p.layer < 0 || p.layer >= p.weights.num_layers) return false;
  if (p.num_projs < 1 || p.num_projs > kMaxFusedProjs) return false;
  for (int i = 0; i < p.num_projs; ++i) {
    if (p.projs[i] < 0 || p.projs[i] >= p.weights.num_projs || p.v[i] == nullptr) return false;
  }
  return true;
}

}  // namespace

template <typename T>
cudaError_t shrink_cuda(const ShrinkParams<T>& p, cudaStream_t stream) {
  if (!args_ok(p)) return cudaErrorInvalidValue;
  if (p.batch.num_tokens == 0 || p.batch.max_rank == 0) return cudaSuccess;
  // 16-byte loads need every vector aligned: row starts of x (in_dim), page starts and offsets
  // inside a page (page_elems), and the base pointers. Otherwise the scalar path, same results.
  const bool vec = p.in_dim % kVecElems == 0 && p.weights.page_elems % kVecElems == 0 &&
                   detail::aligned16(p.x) && detail::aligned16(p.weights.pool);
  if (detail::use_token_tile(p.batch, p.tiling)) {
    return vec ? launch<T, kVecElems, TileShape>(p, stream) : launch<T, 1, TileShape>(p, stream);
  }
  return vec ? launch<T, kVecElems, PerTokenShape>(p, stream)
             : launch<T, 1, PerTokenShape>(p, stream);
}

template cudaError_t shrink_cuda<__nv_bfloat16>(const ShrinkParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t shrink_cuda<__half>(const ShrinkParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::sgmv
