// CpuBackend::rope: rotary embedding with cos/sin from a per-position cache built once per rope
// table (the model's global and local tables), in exactly the float32 values the reference computed
// per token: angle = float(position) * inv_freq[i] in float32 (as transformers does), cos and sin in
// double, rounded to float, times attention_scaling.
#include <cmath>

#include "engine/backend/cpu/cpu_backend.h"

namespace quilt::engine {
namespace {

bool same_table(const RopeTable& a, const RopeTable& b) {
  return a.inv_freq == b.inv_freq && a.long_inv_freq == b.long_inv_freq &&
         a.long_from_position == b.long_from_position && a.attention_scaling == b.attention_scaling;
}

}  // namespace

const CpuBackend::RopeCache& CpuBackend::rope_cache(const RopeTable& table, int64_t positions) {
  RopeCache* cache = nullptr;
  for (RopeCache& c : rope_caches_) {
    if (same_table(c.table, table)) cache = &c;
  }
  if (cache == nullptr) {
    rope_caches_.push_back(RopeCache{table, 0, {}, {}});
    cache = &rope_caches_.back();
  }
  if (positions <= cache->positions) return *cache;
  const int64_t half = static_cast<int64_t>(table.inv_freq.size());
  const int64_t grown = std::max<int64_t>({positions, 2 * cache->positions, 256});
  cache->cos.resize(grown * half);
  cache->sin.resize(grown * half);
  for (int64_t p = cache->positions; p < grown; ++p) {
    const std::vector<float>& inv_freq = table.freqs_at(p);
    const float pos = static_cast<float>(p);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];  // float32 as transformers computes it
      cache->cos[p * half + i] =
          static_cast<float>(std::cos(static_cast<double>(angle))) * table.attention_scaling;
      cache->sin[p * half + i] =
          static_cast<float>(std::sin(static_cast<double>(angle))) * table.attention_scaling;
    }
  }
  cache->positions = grown;
  return *cache;
}

Status CpuBackend::rope(const RopeTable& table, int64_t head_dim, Tensor& q, Tensor& k) {
  const int64_t half = head_dim / 2;
  if (static_cast<int64_t>(table.inv_freq.size()) != half ||
      (table.long_from_position > 0 && static_cast<int64_t>(table.long_inv_freq.size()) != half)) {
    return Status::Internal("cpu backend: rope table does not match head_dim");
  }
  int64_t max_position = -1;
  for (int64_t t = 0; t < q.rows; ++t) {
    if (step_->positions[t] < 0) return Status::Internal("cpu backend: negative rope position");
    max_position = std::max<int64_t>(max_position, step_->positions[t]);
  }
  if (max_position < 0) return Status::OK();
  const RopeCache& cache = rope_cache(table, max_position + 1);
  for (int64_t t = 0; t < q.rows; ++t) {
    const float* cos_v = cache.cos.data() + step_->positions[t] * half;
    const float* sin_v = cache.sin.data() + step_->positions[t] * half;
    for (Tensor* x : {&q, &k}) {
      float* row = x->as<float>() + t * x->stride();
      for (int64_t h = 0; h < x->cols / head_dim; ++h) {
        float* v = row + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {  // rotate_half layout: pairs (i, i + half)
          const float a = v[i], b = v[i + half];
          v[i] = a * cos_v[i] - b * sin_v[i];
          v[i + half] = b * cos_v[i] + a * sin_v[i];
        }
      }
    }
  }
  return Status::OK();
}

}  // namespace quilt::engine
