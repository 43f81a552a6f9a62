// Punica's four LoRA batch workloads: which adapter each token of a batch uses.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace quilt::bench {

enum class Workload { kDistinct, kUniform, kSkewed, kIdentical };
inline constexpr Workload kAllWorkloads[] = {Workload::kDistinct, Workload::kUniform,
                                             Workload::kSkewed, Workload::kIdentical};

inline const char* workload_name(Workload w) {
  switch (w) {
    case Workload::kDistinct:
      return "Distinct";
    case Workload::kUniform:
      return "Uniform";
    case Workload::kSkewed:
      return "Skewed";
    case Workload::kIdentical:
      return "Identical";
  }
  return "?";
}

// Zipf exponent of the Skewed workload (Punica's evaluation draws adapter popularity from a Zipf
// law; 1.5 leaves a few hot adapters and a long tail at 64 tokens).
inline constexpr double kZipfAlpha = 1.5;

// The adapter index (0 .. adapters-1, dense) of each of n tokens, sorted so that tokens sharing an
// adapter are contiguous, as the engine's step layout builder orders them.
//   Distinct:  every token its own adapter (n adapters).
//   Uniform:   ceil(sqrt(n)) adapters, tokens spread evenly over them.
//   Skewed:    each token draws from n candidate adapters with P(i) ∝ (i+1)^-kZipfAlpha (seeded).
//   Identical: one adapter for all.
inline std::vector<int32_t> token_adapters(Workload w, int32_t n, uint64_t seed) {
  std::vector<int32_t> slots(static_cast<size_t>(n), 0);
  switch (w) {
    case Workload::kDistinct:
      for (int32_t t = 0; t < n; ++t) slots[t] = t;
      break;
    case Workload::kUniform: {
      const auto a = static_cast<int32_t>(std::ceil(std::sqrt(static_cast<double>(n))));
      for (int32_t t = 0; t < n; ++t) slots[t] = static_cast<int32_t>(int64_t{t} * a / n);
      break;
    }
    case Workload::kSkewed: {
      std::vector<double> weights(static_cast<size_t>(n));
      for (int32_t i = 0; i < n; ++i) weights[i] = std::pow(i + 1.0, -kZipfAlpha);
      std::mt19937_64 rng(seed);
      std::discrete_distribution<int32_t> pick(weights.begin(), weights.end());
      for (int32_t t = 0; t < n; ++t) slots[t] = pick(rng);
      std::sort(slots.begin(), slots.end());
      // Renumber densely: adapter ids 0 .. distinct-1 in order of appearance.
      int32_t next = -1, prev = -1;
      for (int32_t& s : slots) {
        if (s != prev) {
          prev = s;
          ++next;
        }
        s = next;
      }
      break;
    }
    case Workload::kIdentical:
      break;
  }
  return slots;
}

inline int32_t count_adapters(const std::vector<int32_t>& sorted_slots) {
  return sorted_slots.empty() ? 0 : sorted_slots.back() + 1;
}

}  // namespace quilt::bench
