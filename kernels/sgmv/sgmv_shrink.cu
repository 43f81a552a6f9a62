// LoRA shrink (x · Aᵀ → v) over paged adapter weights, SGMV and BGMV, fused over projections.
//
// Shape of the work: per token and projection, rank dot products of length in_dim: a skinny GEMM
// bound by the bytes of A for decode and, for long segments, by arithmetic. So
//   grid  = (tiles of the batch, rank-row chunks × K slices, fused projections): tiles can be many,
//           so they take x; K slices (split-K) give a one-token batch enough blocks to fill a GPU;
//   block = 4 warps over kRowsPerBlock rows of A, one tile of ≤ 16 tokens, one K slice;
//   tensor-core tiles: x and A staged in shared memory kKChunk columns at a time, each warp one
//           16-wide k step of every 16-row group (m16n16k16, float accumulate), the four warps'
//           partial sums added in shared memory;
//   CUDA-core tiles: each warp owns pairs of rows, lanes stride K by 16-byte vectors, accumulate
//           in float32 and reduce by shuffles; no shared memory and no barrier.
#include <mma.h>

#include "kernels/common/launch.h"
#include "kernels/sgmv/sgmv_common.cuh"

namespace quilt::kernels::sgmv {
namespace {

using detail::kFrag;
using detail::kThreads;
using detail::kTile;
using detail::kVecElems;
using detail::kWarps;
using detail::kWarpSize;

constexpr int kRowsPerBlock = kWarps * kFrag;  // 64 rows of A: 4 WMMA row groups
constexpr int kKChunk = kWarps * kFrag;        // 64 columns of K per staging pass: a k step a warp
constexpr int kLdT = kKChunk + 8;              // shared tiles' row pitch: breaks bank conflicts
constexpr int kLdAcc = kRowsPerBlock + 4;
constexpr int kRowGroups = kRowsPerBlock / kFrag;
// A K slice is never shorter than this (auto split-K), so a block still streams a few vectors.
constexpr int64_t kMinSplitLen = 256;
// Auto split-K aims at this many blocks: a few waves of a 132-SM GPU.
constexpr int64_t kTargetBlocks = 512;
constexpr int kCoreRows = 2;  // rows a warp of the CUDA-core path carries at once
constexpr int kCoreTokens = 4;

// Derived on the host per launch.
struct ShrinkLaunch {
  int32_t row_chunks;  // grid.y = row_chunks × splits
  int32_t k_slice;     // K elements per slice, a multiple of kKChunk
  bool atomic;         // more than one slice: add into the zeroed v
};

__device__ __forceinline__ void put_v(float* v, float s, bool atomic) {
  if (atomic) {
    atomicAdd(v, s);
  } else {
    *v = s;
  }
}

// One warp of the CUDA-core path: rows [j0, j0 + nrows) of A (nrows ≤ kCoreRows) against tokens
// [t0, t0 + nt) (nt ≤ kTokens), over K in [k_begin, k_end).
template <typename T, int kVec, int kTokens>
__device__ __forceinline__ void shrink_warp(const ShrinkParams<T>& p, const LoraModuleRef& m,
                                            int32_t j0, int32_t nrows, int32_t t0, int32_t nt,
                                            int32_t k_begin, int32_t k_end, float* v, bool atomic) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int32_t in_dim = static_cast<int32_t>(p.in_dim);
  const int32_t pe = static_cast<int32_t>(p.weights.page_elems);
  const T* __restrict__ pool = p.weights.pool;
  const int32_t* pages = p.weights.page_indices + m.a_pages;

  constexpr int32_t kStride = kWarpSize * kVec;
  const int32_t k_first = k_begin + lane * kVec;
  // A lane's k walks by kStride; its place in each row's pages moves by the same step.
  const detail::PageStep step = detail::step_of(kStride, pe);
  detail::PageCursor cur[kCoreRows];
#pragma unroll
  for (int r = 0; r < kCoreRows; ++r) {
    cur[r] = detail::cursor_at((j0 + min(r, nrows - 1)) * in_dim + k_first, pe);
  }
  const T* xs[kTokens];
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
    xs[tt] = p.x + static_cast<int64_t>(t0 + min(tt, nt - 1)) * in_dim;
  }
  float acc[kTokens][kCoreRows];
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
    for (int r = 0; r < kCoreRows; ++r) acc[tt][r] = 0.f;
  }

#pragma unroll 2
  for (int32_t k = k_first; k < k_end; k += kStride) {
    float xf[kTokens][kVec];
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt) {
      if (tt < nt) {
        detail::load_ro<kVec>(xs[tt] + k, xf[tt]);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) xf[tt][e] = 0.f;
      }
    }
#pragma unroll
    for (int r = 0; r < kCoreRows; ++r) {
      if (r < nrows) {
        float af[kVec];
        detail::load_ro<kVec>(detail::paged_ptr(pool, pages, pe, cur[r]), af);
#pragma unroll
        for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[tt][r] = fmaf(xf[tt][e], af[e], acc[tt][r]);
        }
      }
      detail::advance(cur[r], step, pe);
    }
  }

  // Every lane ends with the full sums; a different lane stores each so the stores spread out.
  const int32_t max_rank = p.batch.max_rank;
#pragma unroll
  for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
    for (int r = 0; r < kCoreRows; ++r) {
      const float s = detail::warp_sum(acc[tt][r]);
      if (tt < nt && r < nrows && lane == (tt * kCoreRows + r) % kWarpSize) {
        put_v(v + static_cast<int64_t>(t0 + tt) * max_rank + j0 + r, s, atomic);
      }
    }
  }
}

template <typename T, int kVec, int kTokens>
__device__ __forceinline__ void shrink_tile_cores(const ShrinkParams<T>& p, const LoraModuleRef& m,
                                                  int32_t row0, int32_t rows, int32_t t0, int32_t n,
                                                  int32_t k_begin, int32_t k_end, float* v,
                                                  bool atomic) {
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  for (int32_t tt = 0; tt < n; tt += kTokens) {
    for (int32_t r = warp * kCoreRows; r < rows; r += kWarps * kCoreRows) {  // warp-uniform
      shrink_warp<T, kVec, kTokens>(p, m, row0 + r, min(kCoreRows, rows - r), t0 + tt,
                                    min(kTokens, n - tt), k_begin, k_end, v, atomic);
    }
  }
}

// Shared memory of the tensor-core path.
template <typename T>
struct TensorSmem {
  T* xs;       // [kTile][kLdT]: x tile, zero past the tile's tokens and past k_end
  T* as;       // [kRowsPerBlock][kLdT]: A rows, zero past rank and past k_end
  float* acc;  // [kWarps][kTile][kLdAcc]: each warp's partial sums
};

template <typename T, int kVec>
__device__ __forceinline__ void shrink_tile_tensor(const ShrinkParams<T>& p, const LoraModuleRef& m,
                                                   const TensorSmem<T>& sm, int32_t row0,
                                                   int32_t rows, int32_t t0, int32_t n,
                                                   int32_t k_begin, int32_t k_end, float* v,
                                                   bool atomic) {
  namespace wmma = nvcuda::wmma;
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / kWarpSize;
  const int32_t in_dim = static_cast<int32_t>(p.in_dim);
  const int32_t pe = static_cast<int32_t>(p.weights.page_elems);
  const int32_t* pages = p.weights.page_indices + m.a_pages;
  const int groups = (rows + kFrag - 1) / kFrag;  // row groups with rows below rank
  constexpr int kVecsPerRow = kKChunk / kVec;

  wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float> acc[kRowGroups];
#pragma unroll
  for (int g = 0; g < kRowGroups; ++g) wmma::fill_fragment(acc[g], 0.f);

  for (int32_t kc = k_begin; kc < k_end; kc += kKChunk) {
    for (int i = tid; i < kTile * kVecsPerRow; i += kThreads) {
      const int tt = i / kVecsPerRow, kk = (i % kVecsPerRow) * kVec;
      const bool valid = tt < n && kc + kk < k_end;
      detail::stage<kVec>(sm.xs + tt * kLdT + kk,
                          p.x + static_cast<int64_t>(t0 + min(tt, n - 1)) * in_dim + kc + kk,
                          valid);
    }
    for (int i = tid; i < groups * kFrag * kVecsPerRow; i += kThreads) {
      const int r = i / kVecsPerRow, kk = (i % kVecsPerRow) * kVec;
      const bool valid = r < rows && kc + kk < k_end;
      const T* src = p.weights.pool;
      if (valid) {
        src = detail::paged_ptr(p.weights.pool, pages, pe,
                                detail::cursor_at((row0 + r) * in_dim + kc + kk, pe));
      }
      detail::stage<kVec>(sm.as + r * kLdT + kk, src, valid);
    }
    __syncthreads();
    // Warp w takes k step w of the chunk for every row group: the warps share the work whatever
    // the rank, and add up their partial sums at the end.
    wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, T, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, sm.xs + warp * kFrag, kLdT);
#pragma unroll
    for (int g = 0; g < kRowGroups; ++g) {
      if (g < groups) {
        // B = Aᵀ: element (k, j) of B is A[j][k], i.e. column-major with A's row pitch.
        wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T, wmma::col_major> fb;
        wmma::load_matrix_sync(fb, sm.as + g * kFrag * kLdT + warp * kFrag, kLdT);
        wmma::mma_sync(acc[g], fa, fb, acc[g]);
      }
    }
    __syncthreads();  // the tiles are read before the next chunk overwrites them
  }
#pragma unroll
  for (int g = 0; g < kRowGroups; ++g) {
    if (g < groups) {
      wmma::store_matrix_sync(sm.acc + warp * kTile * kLdAcc + g * kFrag, acc[g], kLdAcc,
                              wmma::mem_row_major);
    }
  }
  __syncthreads();
  const int32_t max_rank = p.batch.max_rank;
  for (int i = tid; i < kTile * kRowsPerBlock; i += kThreads) {
    const int tt = i / kRowsPerBlock, r = i % kRowsPerBlock;
    if (tt >= n || r >= rows) continue;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += sm.acc[(w * kTile + tt) * kLdAcc + r];
    put_v(v + static_cast<int64_t>(t0 + tt) * max_rank + row0 + r, s, atomic);
  }
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    shrink_kernel(const __grid_constant__ ShrinkParams<T> p, const ShrinkLaunch l) {
  __shared__ __align__(32) unsigned char xs_raw[kTile * kLdT * sizeof(T)];
  __shared__ __align__(32) unsigned char as_raw[kRowsPerBlock * kLdT * sizeof(T)];
  __shared__ __align__(32) float acc_s[kWarps * kTile * kLdAcc];

  const detail::Tile tile = detail::find_tile(p.batch, static_cast<int32_t>(blockIdx.x), p.path);
  if (tile.n == 0) return;  // block-uniform: past the end of the tile list
  const int32_t chunk = static_cast<int32_t>(blockIdx.y) % l.row_chunks;
  const int32_t split = static_cast<int32_t>(blockIdx.y) / l.row_chunks;
  const int32_t row0 = chunk * kRowsPerBlock;
  const int32_t max_rank = p.batch.max_rank;
  const int32_t proj = p.projs[blockIdx.z];
  float* v = p.v[blockIdx.z];

  LoraModuleRef m{0, 0.f, 0, 0};
  if (tile.slot >= 0) m = detail::load_module(p.weights, tile.slot, p.layer, proj);
  const int32_t rank = min(m.rank, max_rank);
  const int32_t rows = max(0, min(kRowsPerBlock, rank - row0));  // rows of A this block computes

  if (!l.atomic) {
    // One slice: this block owns v's columns [row0, row0 + kRowsPerBlock) of its tokens and writes
    // the zeros past rank itself (with split-K the launcher zeroed v beforehand).
    const int32_t width = min(kRowsPerBlock, max_rank - row0);
    for (int i = static_cast<int>(threadIdx.x); i < tile.n * width; i += kThreads) {
      const int tt = i / width, r = i % width;
      if (r >= rows) v[static_cast<int64_t>(tile.t0 + tt) * max_rank + row0 + r] = 0.f;
    }
  }
  const int32_t k_begin = split * l.k_slice;
  const int64_t slice_end = int64_t{k_begin} + l.k_slice;
  const int32_t k_end = static_cast<int32_t>(slice_end < p.in_dim ? slice_end : p.in_dim);
  if (rows == 0 || k_begin >= k_end) return;  // block-uniform

  if (tile.tensor) {
    const TensorSmem<T> sm{reinterpret_cast<T*>(xs_raw), reinterpret_cast<T*>(as_raw), acc_s};
    shrink_tile_tensor<T, kVec>(p, m, sm, row0, rows, tile.t0, tile.n, k_begin, k_end, v, l.atomic);
  } else if (tile.n == 1) {
    shrink_tile_cores<T, kVec, 1>(p, m, row0, rows, tile.t0, 1, k_begin, k_end, v, l.atomic);
  } else {
    shrink_tile_cores<T, kVec, kCoreTokens>(p, m, row0, rows, tile.t0, tile.n, k_begin, k_end, v,
                                            l.atomic);
  }
}

template <typename T>
bool args_ok(const ShrinkParams<T>& p) {
  if (!detail::weights_ok(p.weights) || !detail::batch_ok(p.batch)) return false;
  if (p.x == nullptr || p.in_dim < 1 || !detail::fits_i32(p.in_dim + detail::kSlack)) return false;
  if (!detail::flat_fits(p.batch.max_rank, p.in_dim)) return false;
  if (p.layer < 0 || p.layer >= p.weights.num_layers) return false;
  if (p.num_projs < 1 || p.num_projs > kMaxFusedProjs) return false;
  if (p.split_k < 0) return false;
  for (int i = 0; i < p.num_projs; ++i) {
    if (p.projs[i] < 0 || p.projs[i] >= p.weights.num_projs || p.v[i] == nullptr) return false;
  }
  return true;
}

// K slices: as asked, or (auto) as many as it takes to reach kTargetBlocks, each ≥ kMinSplitLen.
template <typename T>
ShrinkLaunch plan(const ShrinkParams<T>& p, int64_t tiles) {
  const int64_t row_chunks = detail::ceil_div(p.batch.max_rank, kRowsPerBlock);
  int64_t splits = p.split_k;
  if (splits == 0) {
    const int64_t blocks = tiles * row_chunks * p.num_projs;
    splits =
        std::min(detail::ceil_div(kTargetBlocks, blocks), detail::ceil_div(p.in_dim, kMinSplitLen));
  }
  splits = std::clamp<int64_t>(splits, 1, detail::ceil_div(p.in_dim, kKChunk));
  const int64_t k_slice = detail::ceil_div(detail::ceil_div(p.in_dim, splits), kKChunk) * kKChunk;
  splits = detail::ceil_div(p.in_dim, k_slice);  // no empty slice
  return {static_cast<int32_t>(row_chunks), static_cast<int32_t>(k_slice), splits > 1};
}

template <typename T, int kVec>
cudaError_t launch(const ShrinkParams<T>& p, cudaStream_t stream) {
  const int64_t tiles = detail::max_tiles(p.batch);
  const ShrinkLaunch l = plan(p, tiles);
  const int64_t splits = detail::ceil_div(p.in_dim, l.k_slice);
  if (tiles > std::numeric_limits<int32_t>::max() || l.row_chunks * splits > 65535) {
    return cudaErrorInvalidValue;
  }
  if (l.atomic) {
    const size_t bytes = static_cast<size_t>(p.batch.num_tokens) * p.batch.max_rank * sizeof(float);
    for (int i = 0; i < p.num_projs; ++i) {
      if (const cudaError_t err = cudaMemsetAsync(p.v[i], 0, bytes, stream); err != cudaSuccess) {
        return err;
      }
    }
  }
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(l.row_chunks * splits),
                  static_cast<unsigned>(p.num_projs));
  return launch_kernel<&shrink_kernel<T, kVec>>(LaunchConfig{grid, dim3(kThreads), 0, stream}, p,
                                                l);
}

}  // namespace

template <typename T>
cudaError_t shrink_cuda(const ShrinkParams<T>& p, cudaStream_t stream) {
  if (!args_ok(p)) return cudaErrorInvalidValue;
  if (p.batch.num_tokens == 0 || p.batch.max_rank == 0) return cudaSuccess;
  // 16-byte loads need every vector aligned: row starts of x (in_dim), page starts and the flat
  // offsets of A (page_elems, in_dim), and the base pointers. Otherwise the scalar path.
  const bool vec = p.in_dim % kVecElems == 0 && p.weights.page_elems % kVecElems == 0 &&
                   detail::aligned16(p.x) && detail::aligned16(p.weights.pool);
  return vec ? launch<T, kVecElems>(p, stream) : launch<T, 1>(p, stream);
}

template cudaError_t shrink_cuda<__nv_bfloat16>(const ShrinkParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t shrink_cuda<__half>(const ShrinkParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::sgmv
