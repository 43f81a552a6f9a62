// How the CPU backend keeps a model's weights: matrices (more than one row) in the checkpoint's
// dtype when that is bf16 (widened exactly to float32 inside the GEMM: half the bytes a step
// reads) or as int8 with per-row scales under --quantize int8 (all but the token embedding and
// the output head, by tensor name); vectors (norms, biases) and
// float32/float16 checkpoints in float32. Every op but matmul and embedding reads float32 only.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/gemm.h"

namespace quilt::engine::cpu {

// `src` as a [rows, cols] weight tensor in host memory, converted as the header says.
Result<Tensor> make_weight(const TensorView& src, int64_t rows, int64_t cols, bool quantize_int8);

// The GEMM's view of a weight tensor (float32, bf16 or int8 with its scales); an error for a
// tensor that is none of these or not contiguous.
Result<GemmWeights> gemm_weights(const Tensor& w);

// dst[0, w.cols) = row `row` of w as float32 (bf16 exactly, int8 dequantized): embedding lookups.
void widen_row(const Tensor& w, int64_t row, float* dst);

}  // namespace quilt::engine::cpu
