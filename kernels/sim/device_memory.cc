// Simulated device memory: a reserved range, a bump allocator that never reuses addresses, and a
// shadow byte per 8-byte granule (0: not addressable, 1..8: that many leading bytes addressable,
// kFreed: freed).
#include "kernels/sim/device_memory.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "kernels/sim/sim_state.h"

namespace quilt::sim {

uintptr_t g_device_lo = 0;
uintptr_t g_device_span = 0;

namespace {

constexpr size_t kReservedBytes = size_t{256} << 30;  // address space only: NORESERVE
constexpr size_t kGranule = 8;
constexpr uint8_t kFreed = 0xfd;
constexpr size_t kAlign = 256;       // cudaMalloc's alignment
constexpr size_t kRedzone = 256;     // at least this much unaddressable space after each allocation
constexpr size_t kPageAlignFrom = size_t{64} << 10;

struct Allocation {
  size_t bytes;
  MemoryKind kind;
  bool live;
};

struct Region {
  uint8_t* base = nullptr;
  uint8_t* shadow = nullptr;
  size_t cursor = 0;
  size_t in_use = 0;
  size_t capacity = 0;
  std::map<uintptr_t, Allocation> allocations;  // by start address, freed ones kept for reports
  std::mutex mu;

  Region() {
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    void* b = mmap(nullptr, kReservedBytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    void* s = mmap(nullptr, kReservedBytes / kGranule, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (b == MAP_FAILED || s == MAP_FAILED) {
      std::fprintf(stderr, "quilt-cuda-sim: cannot reserve simulated device memory\n");
      std::abort();
    }
    base = static_cast<uint8_t*>(b);
    shadow = static_cast<uint8_t*>(s);
    g_device_lo = reinterpret_cast<uintptr_t>(base);
    g_device_span = kReservedBytes;
    cursor = kAlign;  // address 0 of the range is never handed out
    const char* mb = std::getenv("QUILT_SIM_DEVICE_MB");
    capacity = (mb != nullptr ? std::strtoull(mb, nullptr, 10) : 16384) << 20;
  }

  void mark(size_t offset, size_t bytes, bool live) {
    const size_t g0 = offset / kGranule;
    const size_t full = bytes / kGranule;
    std::memset(shadow + g0, live ? kGranule : kFreed, full);
    if (bytes % kGranule != 0) shadow[g0 + full] = live ? bytes % kGranule : kFreed;
  }
};

Region& region() {
  static Region* r = new Region();  // never destroyed: device memory outlives static destructors
  return *r;
}

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

}  // namespace

void* allocate(size_t bytes, MemoryKind kind) {
  Region& r = region();
  std::lock_guard<std::mutex> lock(r.mu);
  if (bytes == 0) bytes = 1;
  if (kind == MemoryKind::kDevice && r.in_use + bytes > r.capacity) return nullptr;
  const size_t start = align_up(r.cursor, bytes >= kPageAlignFrom ? 4096 : kAlign);
  if (start + bytes + kRedzone > kReservedBytes) return nullptr;
  r.cursor = start + bytes + kRedzone;
  uint8_t* p = r.base + start;
  std::memset(p, 0xff, bytes);  // poison: NaN in fp32, fp16 and bf16; -1 in integers
  r.mark(start, bytes, true);
  r.allocations[reinterpret_cast<uintptr_t>(p)] = {bytes, kind, true};
  if (kind == MemoryKind::kDevice) r.in_use += bytes;
  return p;
}

bool release(void* p, MemoryKind kind) {
  Region& r = region();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == r.allocations.end() || !it->second.live || it->second.kind != kind) return false;
  Allocation& a = it->second;
  a.live = false;
  const size_t offset = static_cast<uint8_t*>(p) - r.base;
  r.mark(offset, a.bytes, false);
  if (kind == MemoryKind::kDevice) r.in_use -= a.bytes;
  // Give whole pages back; the addresses stay reserved so a use after free is still seen.
  const uintptr_t lo = align_up(reinterpret_cast<uintptr_t>(p), 4096);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + a.bytes) / 4096 * 4096;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  return true;
}

bool addressable(uintptr_t p, size_t n) {
  const Region& r = region();
  const uintptr_t b = reinterpret_cast<uintptr_t>(r.base);
  if (p < b || n > kReservedBytes || p - b > kReservedBytes - n) return false;
  const size_t off = p - b;
  for (size_t g = off / kGranule, last = (off + n - 1) / kGranule; g <= last; ++g) {
    const uint8_t s = r.shadow[g];
    if (s == kGranule) continue;
    if (s == 0 || s > kGranule) return false;
    // A partial granule: the bytes touched in it must be among its first s.
    const size_t end_in_granule = std::min(off + n, (g + 1) * kGranule) - g * kGranule;
    if (end_in_granule > s) return false;
  }
  return true;
}

bool within_one_allocation(uintptr_t p, size_t n) {
  Region& r = region();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.allocations.upper_bound(p);
  if (it == r.allocations.begin()) return false;
  --it;
  return it->second.live && p - it->first <= it->second.bytes && n <= it->second.bytes - (p - it->first);
}

size_t device_bytes_in_use() {
  Region& r = region();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.in_use;
}

size_t device_capacity() { return region().capacity; }

std::string describe_address(uintptr_t p) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(p));
  std::string out = buf;
  if (p < 65536) return out + " (a null pointer or a small integer used as an address)";
  if (!in_device_range(p)) return out + " (not device memory)";
  Region& r = region();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.allocations.upper_bound(p);
  if (it == r.allocations.begin()) return out + " (before every allocation)";
  --it;
  const Allocation& a = it->second;
  const char* kind = a.kind == MemoryKind::kDevice ? "device" : "pinned host";
  const uintptr_t start = it->first;
  if (p < start + a.bytes) {
    std::snprintf(buf, sizeof(buf), " (%llu bytes into a %s %zu-byte %s allocation at 0x%llx%s)",
                  static_cast<unsigned long long>(p - start), a.live ? "live" : "FREED", a.bytes, kind,
                  static_cast<unsigned long long>(start), a.live ? "" : ": use after free");
  } else {
    std::snprintf(buf, sizeof(buf), " (%llu bytes past the end of a %zu-byte %s allocation at 0x%llx)",
                  static_cast<unsigned long long>(p - start - a.bytes), a.bytes, kind,
                  static_cast<unsigned long long>(start));
  }
  return out + buf;
}

}  // namespace quilt::sim
