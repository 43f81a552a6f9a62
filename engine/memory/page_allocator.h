// A free list of fixed-size pages: KV cache blocks and adapter weight pages are both handed out by it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace quilt::engine {

// Not thread-safe: owned by the engine thread.
class PageAllocator {
 public:
  explicit PageAllocator(int32_t num_pages);

  // Appends `n` pages to `out`, or changes nothing and returns false when fewer than n are free.
  bool allocate(int32_t n, std::vector<int32_t>& out);
  void free(std::span<const int32_t> pages);

  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_pages() const { return num_pages_; }
  int32_t num_used() const { return num_pages_ - num_free(); }

 private:
  int32_t num_pages_;
  std::vector<int32_t> free_;  // a stack: recently freed pages are reused first (warm in cache)
};

}  // namespace quilt::engine
