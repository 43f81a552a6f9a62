// Allocator policy: glibc mallopt settings and trimming, and the resident size.
#include "common/memory.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace quilt {

namespace {

constexpr int kMmapThreshold = 256 << 10;
constexpr int kMaxArenas = 4;

// QUILT_MALLOC_TUNING=off keeps glibc's defaults: only for measuring what the policy buys.
bool tuning_off() {
  const char* v = std::getenv("QUILT_MALLOC_TUNING");
  return v != nullptr && std::strcmp(v, "off") == 0;
}

}  // namespace

void tune_allocator() {
#if defined(__GLIBC__)
  if (tuning_off()) return;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);  // setting it also turns the dynamic threshold off
  mallopt(M_ARENA_MAX, kMaxArenas);
#endif
}

void release_free_memory() {
#if defined(__GLIBC__)
  if (tuning_off()) return;
  malloc_trim(0);
#endif
}

int64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace quilt
