// A canary split: which versions of one adapter take its traffic, and in what shares.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "common/status.h"

namespace quilt::adapters {

// version → share of the requests that name the adapter without a version. Empty: the live
// version takes everything.
using LiveSplit = std::map<int64_t, double>;

// Shares must be > 0 and finite and sum to 1 within this.
inline constexpr double kSplitTolerance = 1e-6;
// At most this many versions in one split (a canary is two or three).
inline constexpr size_t kMaxSplitVersions = 16;

// InvalidArgument (naming the version or the sum) unless `split` is non-empty, every share is
// finite and > 0, the shares sum to 1 within kSplitTolerance, and `exists(version)` holds for
// every version (else NotFound naming it).
Status validate_split(const LiveSplit& split, const std::function<bool(int64_t)>& exists);

// The version reported as `live_version`: the largest share, the lower version on a tie.
int64_t primary_version(const LiveSplit& split);

// The version the `n`-th request (0, 1, ...) runs on. Draws follow the golden-ratio sequence
// frac((n + 1) * 0.618…), which spreads any run of consecutive requests over [0, 1) almost
// evenly: over N requests each version's count is within a few requests of share * N, for every
// N, with no randomness to make tests flaky. `split` must be valid.
int64_t pick_version(const LiveSplit& split, uint64_t n);

}  // namespace quilt::adapters
