// Linked into every test binary of a simulator build: a test that leaves a fault report behind
// (memcheck, racecheck, synccheck) fails the run even if it checked no CUDA error, because a
// planted-fault test takes its reports (take_reports) and nothing else should file any.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/sim/sim_runtime.h"

namespace quilt::sim {
namespace {

class FaultListener : public testing::EmptyTestEventListener {
  void OnTestEnd(const testing::TestInfo& info) override {
    const std::vector<std::string> left = take_reports();
    if (left.empty()) return;
    std::fprintf(stderr, "[  SIM FAULT ] %s.%s left %zu simulator fault report(s); first: %s\n",
                 info.test_suite_name(), info.name(), left.size(), left.front().c_str());
    failed_ = true;
  }
  void OnTestProgramEnd(const testing::UnitTest&) override {
    if (!failed_) return;
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(1);
  }
  bool failed_ = false;
};

const bool kRegistered = [] {
  testing::UnitTest::GetInstance()->listeners().Append(new FaultListener());
  return true;
}();

}  // namespace
}  // namespace quilt::sim
