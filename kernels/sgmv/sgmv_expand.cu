// LoRA expand (y += scale · v · Bᵀ) over paged adapter weights, SGMV and BGMV.
//
// Shape of the work: per token, out_dim outputs each summing rank products. Bᵀ is stored as rank
// rows of out_dim, so a thread that owns kVec adjacent columns reads one 16-byte vector per rank
// row, fully coalesced across the block, and keeps its sums in registers:
//   grid  = (token tiles, column tiles of kThreads·kVec): tokens can be many, so they take x, and
//           blocks with neighbouring x read the same Bᵀ tile, which L2 then serves;
//   block = kThreads threads; scale·v for the tile's tokens is staged in shared memory, kChunk rank
//           entries at a time, so any rank (256 and beyond) fits a fixed footprint;
//   each (token, column) of y belongs to exactly one thread: no atomics, one read and one write.
#include "kernels/sgmv/sgmv_common.cuh"

namespace quilt::kernels::sgmv {
namespace {

using detail::kVecElems;

// Rank entries of v staged per pass: 64 covers the common ranks in one pass.
constexpr int kChunk = 64;

template <typename T, int kVec, int kTokens, int kThreads>
__global__ void __launch_bounds__(kThreads)
    expand_kernel(const __grid_constant__ ExpandParams<T> p) {
  // scale · v, transposed ([rank entry][token]) so a thread reads all tokens of one entry at once.
  __shared__ __align__(16) float vs[kChunk][kTokens];

  const int32_t t_begin = static_cast<int32_t>(blockIdx.x) * kTokens;
  const int32_t t_end = min(t_begin + kTokens, p.batch.num_tokens);
  const int32_t out_dim = static_cast<int32_t>(p.out_dim);
  const int32_t pe = static_cast<int32_t>(p.weights.page_elems);
  const int32_t pages_per_row = (out_dim + pe - 1) / pe;
  const int32_t max_rank = p.batch.max_rank;
  const int32_t col = (static_cast<int32_t>(blockIdx.y) * kThreads + threadIdx.x) * kVec;
  const bool active = col < out_dim;
  // A thread's columns sit at the same (page, offset) of every Bᵀ row: one division, ever.
  const int32_t page = col / pe;
  const int32_t off = col - page * pe;
  const T* __restrict__ pool = p.weights.pool;

  for (int32_t t = t_begin; t < t_end;) {
    // Block-uniform from here to the end of the body: find_run and the module are the same for
    // every thread, so the barriers below are reached by all of them.
    const detail::TokenRun run = detail::find_run(p.batch, t, t_end);
    const int32_t t0 = t;
    const int32_t n = run.end - t0;
    t = run.end;
    if (run.slot < 0) continue;
    const LoraModuleRef m = detail::load_module(p.weights, run.slot, p.layer, p.proj);
    const int32_t rank = min(m.rank, max_rank);
    if (rank <= 0) continue;

    float acc[kTokens][kVec];
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[tt][e] = 0.f;
    }
    // This thread's column position in row j's page list is pages + j * pages_per_row.
    const int32_t* pages = p.weights.page_indices + m.bt_pages + page;

    for (int32_t j0 = 0; j0 < rank; j0 += kChunk) {
      const int32_t jn = min(kChunk, rank - j0);
      __syncthreads();  // the previous chunk (or run) has been read by everyone
      // Consecutive threads read consecutive entries of one token's v row (coalesced). Tokens past
      // the run and entries past rank are staged as 0, never read from v (they may hold anything).
      for (int i = threadIdx.x; i < kChunk * kTokens; i += kThreads) {
        const int tt = i / kChunk, jj = i % kChunk;
        vs[jj][tt] = (tt < n && jj < jn)
                         ? p.v[static_cast<int64_t>(t0 + tt) * max_rank + j0 + jj] * m.scale
                         : 0.f;
      }
      __syncthreads();
      if (!active) continue;  // no barrier until the next chunk's, which every thread reaches
#pragma unroll 4
      for (int32_t jj = 0; jj < jn; ++jj) {
        const int64_t row = static_cast<int64_t>(j0 + jj) * pages_per_row;
        float b[kVec];
        detail::load_ro<kVec>(pool + static_cast<int64_t>(__ldg(pages + row)) * pe + off, b);
        float w[kTokens];
        if constexpr (kTokens % 4 == 0) {  // 16-byte shared loads, a broadcast to every thread
#pragma unroll
          for (int q = 0; q < kTokens / 4; ++q) {
            const float4 f = reinterpret_cast<const float4*>(vs[jj])[q];
            w[4 * q] = f.x;
            w[4 * q + 1] = f.y;
            w[4 * q + 2] = f.z;
            w[4 * q + 3] = f.w;
          }
        } else {
#pragma unroll
          for (int tt = 0; tt < kTokens; ++tt) w[tt] = vs[jj][tt];
        }
#pragma unroll
        for (int tt = 0; tt < kTokens; ++tt) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[tt][e] = fmaf(w[tt], b[e], acc[tt][e]);
        }
      }
    }
    if (!active) continue;
#pragma unroll
    for (int tt = 0; tt < kTokens; ++tt) {
      if (tt < n)
        detail::add_store<kVec>(p.y + static_cast<int64_t>(t0 + tt) * out_dim + col, acc[tt]);
    }
  }
}

// Per-token blocks cover 1024 columns (128 threads × 8); token tiles reuse each Bᵀ vector 8 times.
struct PerTokenShape {
  static constexpr int kTokens = 1, kThreads = 128;
};
struct TileShape {
  static constexpr int kTokens = kTileTokens, kThreads = 128;
};

template <typename T, int kVec, typename Shape>
cudaError_t launch(const ExpandParams<T>& p, cudaStream_t stream) {
  const int64_t col_blocks = detail::ceil_div(p.out_dim, int64_t{Shape::kThreads} * kVec);
  if (col_blocks > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.batch.num_tokens, Shape::kTokens)),
                  static_cast<unsigned>(col_blocks), 1);
  expand_kernel<T, kVec, Shape::kTokens, Shape::kThreads><<<grid, Shape::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
bool args_ok(const ExpandParams<T>& p) {
  if (!detail::weights_ok(p.weights) || !detail::batch_ok(p.batch)) return false;
  if (p.v == nullptr || p.y == nullptr) return false;
  if (p.out_dim < 1 || !detail::fits_i32(p.out_dim + detail::kSlack)) return false;
  if (p.layer < 0 || p.layer >= p.weights.num_layers) return false;
  return p.proj >= 0 && p.proj < p.weights.num_projs;
}

}  // namespace

template <typename T>
cudaError_t expand_cuda(const ExpandParams<T>& p, cudaStream_t stream) {
  if (!args_ok(p)) return cudaErrorInvalidValue;
  if (p.batch.num_tokens == 0 || p.batch.max_rank == 0) return cudaSuccess;
  // 16-byte accesses need aligned rows of y (out_dim), aligned page starts and in-page offsets
  // (page_elems), and aligned base pointers. Otherwise the scalar path, same results.
  const bool vec = p.out_dim % kVecElems == 0 && p.weights.page_elems % kVecElems == 0 &&
                   detail::aligned16(p.y) && detail::aligned16(p.weights.pool);
  if (detail::use_token_tile(p.batch, p.tiling)) {
    return vec ? launch<T, kVecElems, TileShape>(p, stream) : launch<T, 1, TileShape>(p, stream);
  }
  return vec ? launch<T, kVecElems, PerTokenShape>(p, stream)
             : launch<T, 1, PerTokenShape>(p, stream);
}

template cudaError_t expand_cuda<__nv_bfloat16>(const ExpandParams<__nv_bfloat16>&, cudaStream_t);
template cudaError_t expand_cuda<__half>(const ExpandParams<__half>&, cudaStream_t);

}  // namespace quilt::kernels::sgmv
