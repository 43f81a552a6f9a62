// Simulated device memory: one reserved address range from which cudaMalloc and cudaMallocHost
// take their allocations, with a shadow byte per 8 bytes saying which bytes are addressable.
// Allocations are 256-byte aligned, filled with 0xff (NaN in every float type) so uninitialised
// reads show, separated by redzones, and never reused after cudaFree, so out-of-bounds accesses
// and use after free are caught exactly (AddressSanitizer's scheme). Private to kernels/sim/.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quilt::sim {

enum class MemoryKind : uint8_t { kDevice, kPinnedHost };

void* allocate(size_t bytes, MemoryKind kind);  // nullptr when the simulated memory is exhausted
// False when p is not the start of a live allocation of this kind.
bool release(void* p, MemoryKind kind);

// The reserved range, [g_device_lo, g_device_lo + g_device_span); empty until the first allocation.
// Read on every instrumented access, so kept in plain globals.
extern uintptr_t g_device_lo;
extern uintptr_t g_device_span;

// True when p lies in the reserved range (live, freed or never allocated).
inline bool in_device_range(uintptr_t p) { return p - g_device_lo < g_device_span; }
// True when every byte of [p, p + n) is in a live allocation (device or pinned host).
bool addressable(uintptr_t p, size_t n);
// True when [p, p + n) lies inside one live allocation.
bool within_one_allocation(uintptr_t p, size_t n);

size_t device_bytes_in_use();
size_t device_capacity();

}  // namespace quilt::sim
