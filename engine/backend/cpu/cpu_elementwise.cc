// CpuBackend's elementwise and row-wise ops (RMSNorm, residual add, gated activations, bias,
// scale, soft-capping): vectorized per ISA (simd.h) and threaded over rows on cpu::pool() once a
// call is big enough to pay for the hand-off.
#include <cmath>
#include <functional>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/simd.h"
#include "engine/backend/cpu/thread_pool.h"

namespace quilt::engine {
namespace {

// Elements per chunk: below this a call stays on the calling thread. A decode step's rows (16 x
// 1536) take microseconds, less than a hand-off to the pool, which on a busy machine can wait for
// a time slice; prefill batches are split.
constexpr int64_t kMinElemsPerChunk = 1 << 17;

// fn(begin_row, end_row) over `rows` rows of `cols` elements, threaded when large.
void for_rows(int64_t rows, int64_t cols, const std::function<void(int64_t, int64_t)>& fn) {
  if (rows <= 0) return;
  const int64_t grain = std::max<int64_t>(1, kMinElemsPerChunk / std::max<int64_t>(cols, 1));
  if (rows <= grain) {
    fn(0, rows);
    return;
  }
  cpu::pool().parallel_for(rows, grain, fn);
}

Status check_f32(const Tensor& t, const char* what) {
  if (t.dtype != DType::kF32 || t.data == nullptr) {
    return Status::Internal(std::string("cpu backend: ") + what + " is not a float32 tensor");
  }
  return Status::OK();
}

// o = w * (x / rms(x)) over n elements (o may be x).
template <int W>
QUILT_SIMD_INLINE void rms_row_impl(const float* x, const float* w, float* o, int64_t n, float eps) {
  const float sum = cpu::sum_squares<W>(x, n);
  const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) o[i] = w[i] * (x[i] * inv);
}
QUILT_SIMD_DISPATCH(rms_row)

template <int W>
QUILT_SIMD_INLINE void silu_mul_row_impl(const float* g, const float* u, float* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + cpu::exp_approx(-g[i])) * u[i];
}
QUILT_SIMD_DISPATCH(silu_mul_row)

template <int W>
QUILT_SIMD_INLINE void add_row_impl(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}
QUILT_SIMD_DISPATCH(add_row)

template <int W>
QUILT_SIMD_INLINE void scale_row_impl(float* a, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] *= s;
}
QUILT_SIMD_DISPATCH(scale_row)

}  // namespace

Status CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const int64_t n = x.cols;
  if (weight.num_elements() != n || out.cols != n || out.rows < x.rows) {
    return Status::Internal("cpu backend: rms_norm shapes do not agree");
  }
  for_rows(x.rows, n, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      rms_row(x.as<float>() + r * x.stride(), weight.as<float>(), out.as<float>() + r * out.stride(),
              n, eps);
    }
  });
  return Status::OK();
}

Status CpuBackend::add(Tensor& acc, const Tensor& x) {
  if (x.num_elements() < acc.num_elements() || !acc.contiguous() || !x.contiguous()) {
    return Status::Internal("cpu backend: add shapes do not agree");
  }
  constexpr int64_t kBlock = 4096;  // elements per "row" of the flat sum
  const int64_t n = acc.num_elements();
  for_rows((n + kBlock - 1) / kBlock, kBlock, [&](int64_t begin, int64_t end) {
    const int64_t lo = begin * kBlock, hi = std::min(n, end * kBlock);
    add_row(acc.as<float>() + lo, x.as<float>() + lo, hi - lo);
  });
  return Status::OK();
}

template <typename Act>
Status CpuBackend::gated(const Tensor& gate, const Tensor& up, Tensor& out, Act act) {
  if (gate.rows != up.rows || gate.cols != up.cols || out.rows < gate.rows ||
      out.cols != gate.cols || !out.contiguous()) {
    return Status::Internal("cpu backend: gated activation shapes do not agree");
  }
  for_rows(gate.rows, gate.cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      act(gate.as<float>() + r * gate.stride(), up.as<float>() + r * up.stride(),
          out.as<float>() + r * out.cols, gate.cols);
    }
  });
  return Status::OK();
}

Status CpuBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  return gated(gate, up, out, [](const float* g, const float* u, float* o, int64_t n) {
    silu_mul_row(g, u, o, n);
  });
}

Status CpuBackend::gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  // PyTorch's gelu(approximate="tanh"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return gated(gate, up, out, [](const float* g, const float* u, float* o, int64_t n) {
    for (int64_t c = 0; c < n; ++c) {
      const float x = g[c];
      o[c] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x))) * u[c];
    }
  });
}

Status CpuBackend::add_bias(Tensor& y, const Tensor& bias) {
  QUILT_RETURN_IF_ERROR(check_f32(y, "add_bias output"));
  QUILT_RETURN_IF_ERROR(check_f32(bias, "add_bias bias"));
  if (bias.rows != 1 || bias.cols != y.cols || !y.contiguous()) {
    return Status::Internal("cpu backend: add_bias shapes do not agree");
  }
  for_rows(y.rows, y.cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) add_row(y.as<float>() + r * y.cols, bias.as<float>(), y.cols);
  });
  return Status::OK();
}

Status CpuBackend::rms_norm_heads(Tensor& x, const Tensor& weight, int64_t head_dim, float eps) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "rms_norm_heads input"));
  QUILT_RETURN_IF_ERROR(check_f32(weight, "rms_norm_heads weight"));
  if (head_dim <= 0 || x.cols % head_dim != 0 || weight.num_elements() != head_dim) {
    return Status::Internal("cpu backend: rms_norm_heads shapes do not agree");
  }
  for_rows(x.rows, x.cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t h = 0; h < x.cols / head_dim; ++h) {
        float* v = x.as<float>() + r * x.stride() + h * head_dim;
        rms_row(static_cast<const float*>(v), weight.as<float>(), v, head_dim, eps);
      }
    }
  });
  return Status::OK();
}

Status CpuBackend::scale(Tensor& x, float s) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "scale input"));
  for_rows(x.rows, x.cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) scale_row(x.as<float>() + r * x.stride(), s, x.cols);
  });
  return Status::OK();
}

Status CpuBackend::softcap(Tensor& x, float cap) {
  QUILT_RETURN_IF_ERROR(check_f32(x, "softcap input"));
  if (!(cap > 0)) return Status::Internal("cpu backend: softcap must be positive");
  for_rows(x.rows, x.cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x.as<float>() + r * x.stride();
      for (int64_t c = 0; c < x.cols; ++c) row[c] = cap * std::tanh(row[c] / cap);
    }
  });
  return Status::OK();
}

}  // namespace quilt::engine
