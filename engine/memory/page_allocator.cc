// PageAllocator: a stack of free page ids.
#include "engine/memory/page_allocator.h"

#include <cassert>

namespace quilt::engine {

PageAllocator::PageAllocator(int32_t num_pages) : num_pages_(num_pages) {
  free_.reserve(num_pages);
  for (int32_t p = num_pages - 1; p >= 0; --p) free_.push_back(p);
}

bool PageAllocator::allocate(int32_t n, std::vector<int32_t>& out) {
  if (n > num_free()) return false;
  for (int32_t i = 0; i < n; ++i) {
    out.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void PageAllocator::free(std::span<const int32_t> pages) {
  for (int32_t p : pages) {
    assert(p >= 0 && p < num_pages_);
    free_.push_back(p);
  }
  assert(free_.size() <= static_cast<size_t>(num_pages_));
}

}  // namespace quilt::engine
