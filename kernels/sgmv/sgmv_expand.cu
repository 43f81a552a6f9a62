// LoRA expand (y += scale · v · Bᵀ) over paged adapter weights, SGMV and BGMV, fused over the
// projections that write side by side into one output row (q, k, v; gate, up).
//
// Shape of the work: per token, out_dim outputs each summing rank products; bound by the bytes of
// Bᵀ, stored as rank rows of out_dim, so a thread that owns kVec adjacent columns reads one 16-byte
// vector per rank row, coalesced across the block:
//   grid  = (tiles of the batch, column tiles of every fused projection, laid end to end, and on z
//           the 128-column sub-tiles of a tensor-core tile): tiles can be many, so they take x;
//           blocks of neighbouring x read the same Bᵀ tile from L2;
//   block = 4 warps over kThreads · kVec columns of one projection and one tile of ≤ 16 tokens;
//   CUDA-core tiles: scale·v staged in shared memory kChunk rank entries at a time, each thread
//           keeps its columns' sums in registers, kCoreTokens tokens at a time;
//   tensor-core tiles: 128-column sub-tiles; scale·v is split into T-typed high and low parts
//           (v ≈ hi + lo to ~16 bits for bf16) so that two m16n16k16 products keep float32's
//           precision of v; Bᵀ staged through shared memory; sums go back through shared memory.
//   Each (token, column) of y belongs to exactly one thread: no atomics, one read and one write.
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

constexpr int kChunk = 64;        // rank entries staged per pass: the common ranks in one
constexpr int kCoreTokens = 8;    // tokens a CUDA-core pass carries in registers
constexpr int kSubCols = 128;     // columns of a tensor-core sub-tile: 32 a warp, two fragments
constexpr int kLdV = kChunk + 8;  // shared tiles' row pitches: break bank conflicts
constexpr int kLdB = kSubCols + 8;
constexpr int kLdOut = kSubCols + 4;
constexpr int kWarpCols = kSubCols / kWarps;
constexpr int kColFrags = kWarpCols / kFrag;

// Derived on the host per launch: column tiles of each projection, laid end to end on grid.y.
struct ExpandLaunch {
  int32_t col_tiles[kMaxFusedProjs];
};

// What one block works on, the same in every thread.
template <typename T>
struct ExpandWork {
  const float* v;        // [num_tokens, max_rank]
  T* y;                  // y + col_offset: column 0 of this projection in row 0
  const int32_t* pages;  // Bᵀ's page list
  float scale;
  int32_t rank;
  int32_t out_dim;
  int32_t c0;  // first column of the block's tile
  int32_t t0, n;
};

template <typename T, int kVec, int kTokens>
__device__ __forceinline__ void expand_tile_cores(const ExpandParams<T>& p, const ExpandWork<T>& w,
                                                  float (*vs)[kTile]) {
  const int tid = static_cast<int>(threadIdx.x);
  const int32_t pe = static_cast<int32_t>(p.weights.page_elems);
  const int32_t max_rank = p.batch.max_rank;
  const int32_t col = w.c0 + tid * kVec;
  const bool active = col < w.out_dim;
  const T* __restrict__ pool = p.weights.pool;
  // A thread's columns move by out_dim from one Bᵀ row to the next: one division, ever.
  const detail::PageStep row_step = detail::step_of(w.out_dim, pe);
  const detail::PageCursor first = detail::cursor_at(col, pe);

  for (int32_t tg = 0; tg < w.n; tg += kTokens) {  // block-uniform
    const int32_t nt = min(kTokens, w.n - tg);
    float acc[kTokens][kVec];
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[tt][e] = 0.f;
    }
    detail::PageCursor cur = first;
    for (int32_t j0 = 0; j0 < w.rank; j0 += kChunk) {
      const int32_t jn = min(kChunk, w.rank - j0);
      __syncthreads();  // the previous chunk (or pass) has been read by everyone
      // Consecutive threads read consecutive entries of one token's v row (coalesced). Tokens past
      // the pass and entries past rank are staged as 0, never read from v.
      for (int i = tid; i < kChunk * kTokens; i += kThreads) {
        const int tt = i / kChunk, jj = i % kChunk;
        vs[jj][tt] = (tt < nt && jj < jn)
                         ? w.v[static_cast<int64_t>(w.t0 + tg + tt) * max_rank + j0 + jj] * w.scale
                         : 0.f;
      }
      __syncthreads();
      if (!active) continue;  // no barrier until the next chunk's, which every thread reaches
#pragma unroll 4
      for (int32_t jj = 0; jj < jn; ++jj) {
        float b[kVec];
        detail::load_ro<kVec>(detail::paged_ptr(pool, w.pages, pe, cur), b);
        detail::advance(cur, row_step, pe);
        float s[kTokens];
        if constexpr (kTokens % 4 == 0) {  // 16-byte shared loads, a broadcast to every thread
#pragma unroll
          for (int q = 0; q < kTokens / 4; ++q) {
            const float4 f = reinterpret_cast<const float4*>(vs[jj])[q];
            s[4 * q] = f.x;
            s[4 * q + 1] = f.y;
            s[4 * q + 2] = f.z;
            s[4 * q + 3] = f.w;
          }
        } else {
#pragma unroll
          for (int tt = 0; tt < kTokens; ++tt) s[tt] = vs[jj][tt];
        }
#pragma unroll
        for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[tt][e] = fmaf(s[tt], b[e], acc[tt][e]);
        }
      }
    }
    if (!active) continue;
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt) {
      if (tt < nt) {
        detail::add_store<kVec>(w.y + static_cast<int64_t>(w.t0 + tg + tt) * p.y_row_stride + col,
                                acc[tt]);
      }
    }
  }
}

// Shared memory of the tensor-core path.
template <typename T>
struct TensorSmem {
  T* v_hi;     // [kTile][kLdV]: T(scale · v)
  T* v_lo;     // [kTile][kLdV]: T(scale · v − hi)
  T* bs;       // [kChunk][kLdB]: Bᵀ rows of the chunk, the sub-tile's columns
  float* out;  // [kTile][kLdOut]: the sub-tile's sums
};

template <typename T, int kVec>
__device__ __forceinline__ void expand_tile_tensor(const ExpandParams<T>& p, const ExpandWork<T>& w,
                                                   const TensorSmem<T>& sm) {
  namespace wmma = nvcuda::wmma;
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / kWarpSize;
  const int32_t pe = static_cast<int32_t>(p.weights.page_elems);
  const int32_t max_rank = p.batch.max_rank;
  constexpr int kVecsPerRow = kSubCols / kVec;

  // The block's kThreads · kVec columns, kSubCols at a time; with gridDim.z > 1 the sub-tiles are
  // shared out among that many blocks.
  for (int sc = static_cast<int>(blockIdx.z); sc < kVec; sc += static_cast<int>(gridDim.z)) {
    const int32_t cs = w.c0 + sc * kSubCols;
    if (cs >= w.out_dim) break;  // block-uniform
    wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float> acc[kColFrags];
#pragma unroll
    for (int f = 0; f < kColFrags; ++f) wmma::fill_fragment(acc[f], 0.f);

    for (int32_t j0 = 0; j0 < w.rank; j0 += kChunk) {
      const int32_t jn = min(kChunk, w.rank - j0);
      const int ksteps = (jn + kFrag - 1) / kFrag;
      __syncthreads();  // everyone is done with the previous chunk, sub-tile and its sums
      for (int i = tid; i < kTile * kChunk; i += kThreads) {
        const int tt = i / kChunk, jj = i % kChunk;
        const float f = (tt < w.n && jj < jn)
                            ? w.v[static_cast<int64_t>(w.t0 + tt) * max_rank + j0 + jj] * w.scale
                            : 0.f;
        const T hi = detail::from_float<T>(f);
        sm.v_hi[tt * kLdV + jj] = hi;
        sm.v_lo[tt * kLdV + jj] = detail::from_float<T>(f - detail::to_float(hi));
      }
      for (int i = tid; i < ksteps * kFrag * kVecsPerRow; i += kThreads) {
        const int jj = i / kVecsPerRow, cc = (i % kVecsPerRow) * kVec;
        const bool valid = jj < jn && cs + cc < w.out_dim;
        const T* src = p.weights.pool;
        if (valid) {
          src = detail::paged_ptr(p.weights.pool, w.pages, pe,
                                  detail::cursor_at((j0 + jj) * w.out_dim + cs + cc, pe));
        }
        detail::stage<kVec>(sm.bs + jj * kLdB + cc, src, valid);
      }
      __syncthreads();
      for (int ks = 0; ks < ksteps; ++ks) {
        wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, T, wmma::row_major> a_hi, a_lo;
        wmma::load_matrix_sync(a_hi, sm.v_hi + ks * kFrag, kLdV);
        wmma::load_matrix_sync(a_lo, sm.v_lo + ks * kFrag, kLdV);
#pragma unroll
        for (int f = 0; f < kColFrags; ++f) {
          wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T, wmma::row_major> b;
          wmma::load_matrix_sync(b, sm.bs + ks * kFrag * kLdB + warp * kWarpCols + f * kFrag, kLdB);
          wmma::mma_sync(acc[f], a_hi, b, acc[f]);
          wmma::mma_sync(acc[f], a_lo, b, acc[f]);
        }
      }
    }
#pragma unroll
    for (int f = 0; f < kColFrags; ++f) {
      wmma::store_matrix_sync(sm.out + warp * kWarpCols + f * kFrag, acc[f], kLdOut,
                              wmma::mem_row_major);
    }
    __syncthreads();
    for (int i = tid; i < kTile * kVecsPerRow; i += kThreads) {
      const int tt = i / kVecsPerRow, cc = (i % kVecsPerRow) * kVec;
      if (tt >= w.n || cs + cc >= w.out_dim) continue;
      detail::add_store<kVec>(w.y + static_cast<int64_t>(w.t0 + tt) * p.y_row_stride + cs + cc,
                              sm.out + tt * kLdOut + cc);
    }
  }
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    expand_kernel(const __grid_constant__ ExpandParams<T> p, const ExpandLaunch l) {
  __shared__ __align__(16) float vs[kChunk][kTile];  // CUDA-core path: scale · v, [entry][token]
  __shared__ __align__(32) unsigned char v_hi_raw[kTile * kLdV * sizeof(T)];
  __shared__ __align__(32) unsigned char v_lo_raw[kTile * kLdV * sizeof(T)];
  __shared__ __align__(32) unsigned char bs_raw[kChunk * kLdB * sizeof(T)];
  __shared__ __align__(32) float out_s[kTile * kLdOut];

  const detail::Tile tile = detail::find_tile(p.batch, static_cast<int32_t>(blockIdx.x), p.path);
  if (tile.n == 0 || tile.slot < 0) return;  // block-uniform
  int32_t pi = 0, ct = static_cast<int32_t>(blockIdx.y);
  while (pi + 1 < p.num_projs && ct >= l.col_tiles[pi]) ct -= l.col_tiles[pi++];
  const LoraModuleRef m = detail::load_module(p.weights, tile.slot, p.layer, p.projs[pi]);
  const int32_t rank = min(m.rank, p.batch.max_rank);
  if (rank <= 0) return;  // block-uniform

  const ExpandWork<T> w{p.v[pi],
                        p.y + p.col_offset[pi],
                        p.weights.page_indices + m.bt_pages,
                        m.scale,
                        rank,
                        static_cast<int32_t>(p.out_dim[pi]),
                        ct * kThreads * kVec,
                        tile.t0,
                        tile.n};
  if (tile.tensor) {  // block-uniform, as is blockIdx.z
    const TensorSmem<T> sm{reinterpret_cast<T*>(v_hi_raw), reinterpret_cast<T*>(v_lo_raw),
                           reinterpret_cast<T*>(bs_raw), out_s};
    expand_tile_tensor<T, kVec>(p, w, sm);
  } else if (blockIdx.z > 0) {
    return;  // a CUDA-core tile's columns all belong to the block with z = 0
  } else if (tile.n == 1) {
    expand_tile_cores<T, kVec, 1>(p, w, vs);
  } else {
    expand_tile_cores<T, kVec, kCoreTokens>(p, w, vs);
  }
}

template <typename T>
bool args_ok(const ExpandParams<T>& p) {
  if (!detail::weights_ok(p.weights) || !detail::batch_ok(p.batch)) return false;
  if (p.y == nullptr || p.y_row_stride < 1) return false;
  if (p.layer < 0 || p.layer >= p.weights.num_layers) return false;
  if (p.num_projs < 1 || p.num_projs > kMaxFusedProjs) return false;
  for (int i = 0; i < p.num_projs; ++i) {
    if (p.v[i] == nullptr || p.projs[i] < 0 || p.projs[i] >= p.weights.num_projs) return false;
    if (p.out_dim[i] < 1 || !detail::fits_i32(p.out_dim[i] + detail::kSlack)) return false;
    if (!detail::flat_fits(p.batch.max_rank, p.out_dim[i])) return false;
    if (p.col_offset[i] < 0 || p.col_offset[i] + p.out_dim[i] > p.y_row_stride) return false;
  }
  return true;
}

template <typename T, int kVec>
cudaError_t launch(const ExpandParams<T>& p, cudaStream_t stream) {
  ExpandLaunch l{};
  int64_t col_tiles = 0;
  for (int i = 0; i < p.num_projs; ++i) {
    l.col_tiles[i] = static_cast<int32_t>(detail::ceil_div(p.out_dim[i], int64_t{kThreads} * kVec));
    col_tiles += l.col_tiles[i];
  }
  const int64_t tiles = detail::max_tiles(p.batch);
  if (col_tiles > 65535 || tiles > std::numeric_limits<int32_t>::max()) {
    return cudaErrorInvalidValue;
  }
  // A tensor-core tile is 16 tokens deep, so it takes 16x fewer blocks than the same tokens on CUDA
  // cores: its column sub-tiles go to kVec blocks on z, lest a long segment run on a handful of
  // SMs. Only launches that can hold such a tile pay for the extra (at once exiting) blocks.
  const bool tensor_tiles = p.path == LoraPath::kTensorCores ||
                            (p.path == LoraPath::kAuto && p.batch.num_tokens >= kTile);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(col_tiles),
                  tensor_tiles ? kVec : 1);
  return launch_kernel<&expand_kernel<T, kVec>>(LaunchConfig{grid, dim3(kThreads), 0, stream}, p,
                                                l);
}

}  // namespace

template <typename T>
cudaError_t expand_cuda(const ExpandParams<T>& p, cudaStream_t stream) {
  if (!args_ok(p)) return cudaErrorInvalidValue;
  if (p.batch.num_tokens == 0 || p.batch.max_rank == 0) return cudaSuccess;
  // 16-byte accesses need aligned rows and column starts of y, aligned page starts and flat offsets
  // of Bᵀ (page_elems, out_dim), and aligned base pointers. Otherwise the scalar path.
  bool vec = p.y_row_stride % kVecElems == 0 && p.weights.page_elems % kVecElems == 0 &&
             detail::aligned16(p.y) && detail::aligned16(p.weights.pool);
  for (int i = 0; i < p.num_projs; ++i) {
    vec = vec && p.out_dim[i] % kVecElems == 0 && p.col_offset[i] % kVecElems == 0;
  }
  return vec ? launch<T, kVecElems>(p, stream) : launch<T, 1>(p, stream);
}

template cudaError_t expand_cuda<__nv_bfloat16>(const ExpandParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t expand_cuda<__half>(const ExpandParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::sgmv
