// Private to the registry's .cc files: the in-memory state of one adapter name.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "adapters/registry.h"

namespace quilt::adapters {

struct AdapterRegistry::Entry {
  std::mutex write_mu;  // orders the persisted changes of this name (see registry.cc)

  // Protected by the registry's mu_.
  std::string name;
  std::string owner;
  bool shared = false;
  int64_t live_version = 0;              // 0 while nothing is live (no commit yet, or all staged)
  LiveSplit split;                       // the canary split; empty: live_version takes all
  std::vector<AdapterVersion> versions;  // ascending; empty: invisible to every reader
  int64_t next_version = 1;              // reserved numbers are never handed out twice
  int pending_deploys = 0;               // deploys holding this entry; it is not dropped meanwhile
  uint64_t incarnation = 0;              // renewed by remove(); keys loads in flight
  uint64_t picks = 0;                    // requests routed by the split so far

  const AdapterVersion* find_version(int64_t v) const {
    for (const auto& av : versions) {
      if (av.version == v) return &av;
    }
    return nullptr;
  }
};

namespace registry_detail {

inline Status not_found(const std::string& ref) {
  return Status::NotFound("adapter '" + ref + "' not found");
}

}  // namespace registry_detail
}  // namespace quilt::adapters
