// The process's allocator policy: how memory freed after a burst goes back to the system.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quilt {

// glibc malloc keeps freed memory in its arenas for reuse: after a burst (a thousand streams,
// a flood of completions) the resident size stays at its peak. The server's policy, measured in
// bench/results/2026-12-02-memory-bounds.md:
//  - a fixed mmap threshold (256 KiB): large buffers (stream queues, upload chunks, response
//    bodies) are mapped and unmapped on their own instead of raising glibc's dynamic threshold
//    to 32 MiB and staying in the heap after use;
//  - at most 4 arenas (not 8 per core): fewer heaps to strand free memory in;
//  - release_free_memory() every few seconds (the serve loop), which returns the free pages in
//    the middle of every arena (malloc_trim(0); glibc only trims the top of a heap by itself).
// Call tune_allocator() once, early in main, before threads start. Both are no-ops with another
// allocator, and with QUILT_MALLOC_TUNING=off in the environment (to measure glibc's defaults).
void tune_allocator();

// Returns free heap pages to the system; thread-safe. Takes about a millisecond per GiB of heap.
void release_free_memory();

// The process's resident set size in bytes (from /proc/self/statm); 0 where unknown.
int64_t resident_bytes();

}  // namespace quilt
