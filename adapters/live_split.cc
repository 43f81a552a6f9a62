// validate_split / primary_version / pick_version.
#include "adapters/live_split.h"

#include <cmath>
#include <string>

namespace quilt::adapters {

Status validate_split(const LiveSplit& split, const std::function<bool(int64_t)>& exists) {
  if (split.empty()) return Status::InvalidArgument("split: must name at least one version");
  if (split.size() > kMaxSplitVersions) {
    return Status::InvalidArgument("split: at most " + std::to_string(kMaxSplitVersions) +
                                   " versions");
  }
  double sum = 0;
  for (const auto& [version, share] : split) {
    const std::string v = std::to_string(version);
    if (version <= 0) return Status::InvalidArgument("split: version " + v + " is not positive");
    if (!std::isfinite(share) || share <= 0) {
      return Status::InvalidArgument("split: the share of version " + v + " must be > 0");
    }
    sum += share;
  }
  if (std::fabs(sum - 1.0) > kSplitTolerance) {
    return Status::InvalidArgument("split: shares sum to " + std::to_string(sum) + ", not 1");
  }
  for (const auto& [version, share] : split) {
    if (!exists(version)) return Status::NotFound("no version " + std::to_string(version));
  }
  return Status::OK();
}

int64_t primary_version(const LiveSplit& split) {
  int64_t best = 0;
  double best_share = -1;
  for (const auto& [version, share] : split) {  // ascending: a tie keeps the lower version
    if (share > best_share) {
      best = version;
      best_share = share;
    }
  }
  return best;
}

int64_t pick_version(const LiveSplit& split, uint64_t n) {
  // frac((n + 1) * 0.618…) in 64-bit fixed point (a Weyl sequence): exact for every n.
  const uint64_t x = (n + 1) * 0x9E3779B97F4A7C15ull;
  const double u = static_cast<double>(x >> 11) * 0x1p-53;
  double edge = 0;
  for (const auto& [version, share] : split) {
    edge += share;
    if (u < edge) return version;
  }
  return split.rbegin()->first;  // rounding left u just above the last edge
}

}  // namespace quilt::adapters
