// nvcuda::wmma for the CUDA simulator (shadows the toolkit's mma.h in simulator builds only).
//
// A fragment's element layout across lanes is unspecified in CUDA, so here every lane holds the
// whole tile (num_elements = rows × cols): loads read the tile, mma_sync multiplies in float32 as
// the tensor cores do (inputs exact, products accumulated in float), stores split the tile over the
// lanes. Each operation is a warp collective: all 32 lanes must call it, as on the GPU. Code that
// relies on a particular lane layout of frag.x[] is not portable and is not supported here.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/sim/device_api.h"

namespace nvcuda::wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
enum layout_t { mem_row_major, mem_col_major };

namespace precision {
struct tf32;
}

namespace detail {
template <typename Use, int M, int N, int K>
struct Shape;
template <int M, int N, int K>
struct Shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};
template <typename T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};
inline float to_f(float v) { return v; }
inline float to_f(__half v) { return __half2float(v); }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
T from_f(float v);
template <>
inline float from_f<float>(float v) { return v; }
template <>
inline __half from_f<__half>(float v) { return __float2half_rn(v); }
template <>
inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
inline void converge(const char* file, int line) {
  ::quilt::sim::warp_collective(::quilt::sim::WarpOp::kSync, 0xffffffffu, 0, 0, 32, file, line);
}
}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = detail::Shape<Use, M, N, K>::rows;
  static constexpr int cols = detail::Shape<Use, M, N, K>::cols;
  using element_type = T;
  using storage_element_type = typename detail::Storage<T>::type;
  static constexpr int num_elements = rows * cols;
  storage_element_type x[num_elements];  // row-major tile: x[r * cols + c]
};

template <typename Use, int M, int N, int K, typename T, typename L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, const typename fragment<Use, M, N, K, T, L>::storage_element_type& v) {
  for (auto& e : f.x) e = v;
}

// matrix_a / matrix_b: the layout is part of the fragment's type.
template <typename Use, int M, int N, int K, typename T, typename L>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::converge(file, line);
  using F = fragment<Use, M, N, K, T, L>;
  constexpr bool row = std::is_same_v<L, row_major>;
  for (int r = 0; r < F::rows; ++r) {
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = row ? p[r * ldm + c] : p[c * ldm + r];
  }
}

// accumulator: the layout is given at the call.
template <int M, int N, int K, typename T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::converge(file, line);
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < N; ++c) f.x[r * N + c] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
  }
}

template <int M, int N, int K, typename T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout,
                       const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::converge(file, line);
  const int lane = static_cast<int>(::quilt::sim::lane_id());
  for (int i = lane; i < M * N; i += 32) {  // each element stored by one lane, as on the GPU
    const int r = i / N, c = i % N;
    (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[i];
  }
}

// d = a · b + c, products and sums in float32. Fragments are registers: their reads and writes are
// not memory accesses, so they are kept out of the memory checks (and out of their cost).
template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
__attribute__((no_sanitize_thread)) void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::converge(file, line);
  float fa[M * K], fb[K * N], out[M * N];
  for (int i = 0; i < M * K; ++i) fa[i] = detail::to_f(a.x[i]);
  for (int i = 0; i < K * N; ++i) fb[i] = detail::to_f(b.x[i]);
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) out[i * N + j] = detail::to_f(c.x[i * N + j]);
    for (int k = 0; k < K; ++k) {
      const float av = fa[i * K + k];
      for (int j = 0; j < N; ++j) out[i * N + j] += av * fb[k * N + j];
    }
  }
  for (int i = 0; i < M * N; ++i) d.x[i] = detail::from_f<TC>(out[i]);
}

}  // namespace nvcuda::wmma
