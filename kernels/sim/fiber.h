// Fibers: the simulated CUDA threads of one block, each with its own stack, switched cooperatively
// on one OS thread (a few nanoseconds a switch). x86-64 only: the simulator runs where CI runs.
// Private to kernels/sim/. Not thread-safe: a StackPool belongs to the OS thread running a block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace quilt::sim {

// Saved registers of a suspended context.
struct Context {
  void* sp = nullptr;
};

// Switches from `from` (saved) to `to` (resumed).
void switch_context(Context& from, Context& to);

// Makes `ctx` start `entry()` on [stack, stack + bytes) when first switched to. entry never returns.
void make_context(Context& ctx, void* stack, size_t bytes, void (*entry)());

// Stacks for up to 1024 threads, reused block after block, each with a guard page below it.
class StackPool {
 public:
  static constexpr size_t kStackBytes = 256 * 1024;
  ~StackPool();
  // The stack of thread i, allocated on first use.
  void* stack(int i);
  bool contains(uintptr_t p) const;

 private:
  uint8_t* base_ = nullptr;
  size_t count_ = 0;
};

}  // namespace quilt::sim
