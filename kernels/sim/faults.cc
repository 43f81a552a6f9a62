// Fault reports and the sticky error they leave, as a real device leaves cudaErrorIllegalAddress.
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/sim/sim_runtime.h"
#include "kernels/sim/sim_state.h"

namespace quilt::sim {
namespace {

std::mutex& mu() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& pending() {
  static std::vector<std::string> v;
  return v;
}
cudaError_t sticky = cudaSuccess;

}  // namespace

void report(std::string message) {
  std::lock_guard<std::mutex> lock(mu());
  std::fprintf(stderr, "quilt-cuda-sim: %s\n", message.c_str());
  pending().push_back(std::move(message));
  sticky = cudaErrorIllegalAddress;
}

std::vector<std::string> take_reports() {
  std::lock_guard<std::mutex> lock(mu());
  std::vector<std::string> out;
  out.swap(pending());
  sticky = cudaSuccess;
  return out;
}

size_t pending_report_count() {
  std::lock_guard<std::mutex> lock(mu());
  return pending().size();
}

cudaError_t sticky_error() {
  std::lock_guard<std::mutex> lock(mu());
  return sticky;
}

}  // namespace quilt::sim
