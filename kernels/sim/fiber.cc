// Fiber context switching, hand-written for x86-64: the callee-saved registers, MXCSR and the x87
// control word, as the System V ABI requires.
#include "kernels/sim/fiber.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if !defined(__x86_64__)
#error "the CUDA simulator's fibers are written for x86-64"
#endif

namespace quilt::sim {

extern "C" void quilt_sim_switch(void** save_sp, void* new_sp);
asm(R"(
.text
.globl quilt_sim_switch
.type quilt_sim_switch,@function
quilt_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size quilt_sim_switch,.-quilt_sim_switch
.section .note.GNU-stack,"",@progbits
.text
)");

void switch_context(Context& from, Context& to) { quilt_sim_switch(&from.sp, to.sp); }

void make_context(Context& ctx, void* stack, size_t bytes, void (*entry)()) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15};
  auto* s = reinterpret_cast<uint64_t*>(top);
  uint32_t mxcsr = 0;
  uint16_t fpucw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  s[-1] = 0;                                     // entry's return address: it never returns
  s[-2] = reinterpret_cast<uint64_t>(entry);     // popped by quilt_sim_switch's ret
  for (int i = 3; i <= 8; ++i) s[-i] = 0;        // rbp rbx r12 r13 r14 r15
  s[-9] = uint64_t{mxcsr} | (uint64_t{fpucw} << 32);
  ctx.sp = &s[-9];
}


namespace {
constexpr size_t kMaxThreads = 1024;
constexpr size_t kGuard = 4096;
constexpr size_t kSlot = StackPool::kStackBytes + kGuard;
}  // namespace

StackPool::~StackPool() {
  if (base_ != nullptr) munmap(base_, kSlot * kMaxThreads);
}

void* StackPool::stack(int i) {
  if (base_ == nullptr) {
    void* b = mmap(nullptr, kSlot * kMaxThreads, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED) {
      std::fprintf(stderr, "quilt-cuda-sim: cannot map thread stacks\n");
      std::abort();
    }
    base_ = static_cast<uint8_t*>(b);
    for (size_t k = 0; k < kMaxThreads; ++k) mprotect(base_ + k * kSlot, kGuard, PROT_NONE);
    count_ = kMaxThreads;
  }
  return base_ + static_cast<size_t>(i) * kSlot + kGuard;
}

bool StackPool::contains(uintptr_t p) const {
  const auto b = reinterpret_cast<uintptr_t>(base_);
  return base_ != nullptr && p >= b && p < b + kSlot * count_;
}

}  // namespace quilt::sim
