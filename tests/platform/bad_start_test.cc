// Every bad start of the real `quilt serve` ends with a message on stderr naming the problem and a
// non-zero exit status, never a signal.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

using namespace std::chrono_literals;

struct Outcome {
  bool exited = false;  // false: killed by a signal (or our timeout)
  int code = -1;        // exit status, or the signal
  std::string err;
};

// Runs `quilt serve ARGS` with a fresh admin key and returns how it ended. A server that starts
// (it should not) is killed after `limit`.
Outcome run_serve(const std::vector<std::string>& args, std::chrono::seconds limit = 60s) {
  int err[2];
  EXPECT_EQ(pipe(err), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], STDERR_FILENO);
    const int null = ::open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    close(err[0]);
    setenv("QUILT_ADMIN_KEY", "bad-start-admin-key", 1);
    std::vector<char*> argv = {const_cast<char*>(QUILT_BINARY), const_cast<char*>("serve")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(QUILT_BINARY, argv.data());
    _exit(127);
  }
  close(err[1]);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  Outcome o;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    char buf[512];
    ssize_t n;
    while ((n = read(err[0], buf, sizeof buf)) > 0) o.err.append(buf, static_cast<size_t>(n));
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      o.err += "\n[killed: still running after the limit]";
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  char buf[512];
  ssize_t n;
  while ((n = read(err[0], buf, sizeof buf)) > 0) o.err.append(buf, static_cast<size_t>(n));
  close(err[0]);
  o.exited = WIFEXITED(status);
  o.code = o.exited ? WEXITSTATUS(status) : WTERMSIG(status);
  return o;
}

class BadStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("quilt-bad-start-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The common flags: a data dir of the test's own, any port.
  std::vector<std::string> flags(std::vector<std::string> extra) const {
    std::vector<std::string> out = {"--port", "0", "--threads", "1", "--kv-cache-mb", "8"};
    bool has_data = false;
    for (const auto& e : extra) has_data |= e == "--data-dir";
    if (!has_data) out.insert(out.end(), {"--data-dir", (dir_ / "data").string()});
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
  }

  std::filesystem::path dir_;
};

struct Case {
  const char* name;
  std::vector<std::string> args;  // "{dir}" stands for the test's directory
  const char* message;            // a part of stderr that names the problem
};

TEST_F(BadStartTest, EveryBadStartExitsNonZeroWithAMessage) {
  const std::string model = source_path("examples/models/tiny-llama");
  // A model whose tokenizer the loader refuses: the demo model with a broken tokenizer.json.
  const auto bad_tok = dir_ / "bad-tokenizer-model";
  std::filesystem::copy(model, bad_tok, std::filesystem::copy_options::recursive);
  std::ofstream(bad_tok / "tokenizer.json", std::ios::trunc) << "{\"model\": {\"type\": \"Nope\"}}";
  std::ofstream(dir_ / "a-file") << "not a directory";
  // Models whose config.json asks for what the forward pass cannot compute (issue 10, item 6):
  // the demo model with one field of its config.json replaced.
  const auto with_config_field = [&](const std::string& name, const std::string& field,
                                     const std::string& value_json) {
    const auto d = dir_ / name;
    std::filesystem::copy(model, d, std::filesystem::copy_options::recursive);
    std::ifstream in(d / "config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    config[field] = nlohmann::json::parse(value_json);
    std::ofstream(d / "config.json", std::ios::trunc) << config.dump(2);
    return d.string();
  };
  const std::string bad_arch =
      with_config_field("deepseek-model", "architectures", "[\"DeepseekV3ForCausalLM\"]");
  const std::string bad_rope = with_config_field(
      "yarn-model", "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}");
  const std::string bad_partial = with_config_field("partial-model", "partial_rotary_factor", "0.75");

  const std::string bad_config = (dir_ / "bad-config.json").string();
  std::ofstream(bad_config) << R"({"max-loras": 0})";
  const std::string unknown_config = (dir_ / "unknown-config.toml").string();
  std::ofstream(unknown_config) << "max-lora = 4\n";

  const std::vector<Case> cases = {
      {"missing model dir", {"--model", "{dir}/no-such-model"}, "no-such-model"},
      {"adapter folder as model", {"--model", source_path("examples/adapters/support-bot")}, "support-bot"},
      {"unknown device", {"--device", "bogus"}, "unknown device 'bogus'"},
      // Without CUDA in the build this is "--device cuda in a CPU build"; with it, a GPU that
      // does not exist. Either way a refusal that names the device.
      {"cuda device that cannot be had", {"--device", "cuda:99"}, "cuda:99"},
      {"data dir is a file", {"--data-dir", "{dir}/a-file"}, "a-file"},
      {"data dir cannot be created", {"--data-dir", "/proc/quilt-no-such-dir/data"}, "cannot create database directory"},
      {"tokenizer refused", {"--model", bad_tok.string()}, "tokenizer"},
      {"architecture refused", {"--model", bad_arch}, "'DeepseekV3ForCausalLM' is not supported"},
      {"rope type refused", {"--model", bad_rope}, "rope_scaling.rope_type 'yarn' is not supported"},
      {"partial rotary refused", {"--model", bad_partial}, "partial_rotary_factor 0.75"},
      // The command line itself (CLI11): --flag=value checked like --flag value, unknown flags and
      // config files named.
      {"bad value as --flag=value", {"--max-waiting=many"}, "max-waiting: expected a non-negative integer, got 'many'"},
      {"unknown flag", {"--no-such-flag", "1"}, "--no-such-flag"},
      {"flag without its value", {"--model"}, "--model"},
      {"missing config file", {"--config", "{dir}/none.json"}, "none.json"},
      {"bad value in the config file", {"--config", bad_config}, "max-loras: must be in [1, 65536]"},
      {"unknown setting in the config file", {"--config", unknown_config}, "unknown setting 'max-lora'"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args;
    for (std::string a : c.args) {
      if (auto at = a.find("{dir}"); at != std::string::npos) a.replace(at, 5, dir_.string());
      args.push_back(a);
    }
    Outcome o = run_serve(flags(args));
    EXPECT_TRUE(o.exited) << c.name << ": killed by signal " << o.code << "; stderr:\n" << o.err;
    EXPECT_NE(o.code, 0) << c.name;
    EXPECT_NE(o.err.find(c.message), std::string::npos)
        << c.name << ": stderr does not say '" << c.message << "':\n" << o.err;
    EXPECT_NE(o.err.find("quilt serve:"), std::string::npos) << c.name << ":\n" << o.err;
  }
}

TEST_F(BadStartTest, ASecondServerOnTheSameDataDirSaysItIsInUse) {
  // The first server: started the way crash_test does, waiting for its address line.
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const std::string data = (dir_ / "data").string();
  const pid_t first = fork();
  if (first == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    setenv("QUILT_ADMIN_KEY", "bad-start-admin-key", 1);
    execl(QUILT_BINARY, QUILT_BINARY, "serve", "--data-dir", data.c_str(), "--port", "0", "--threads", "1",
          "--kv-cache-mb", "8", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[256];
  while (text.find(" (device") == std::string::npos) {
    const ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  if (text.find(" (device") == std::string::npos) {
    kill(first, SIGKILL);
    waitpid(first, nullptr, 0);
    FAIL() << "the first server did not start: " << text;
  }

  Outcome o = run_serve(flags({"--data-dir", data}));
  kill(first, SIGTERM);
  int status = 0;
  // Its stdout stays open until it exited: it prints while draining.
  while (read(out[0], buf, sizeof(buf)) > 0) {
  }
  close(out[0]);
  waitpid(first, &status, 0);
  EXPECT_TRUE(o.exited) << "killed by signal " << o.code << "; stderr:\n" << o.err;
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("in use by another process"), std::string::npos) << o.err;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the first server did not stop cleanly";
}

}  // namespace
}  // namespace quilt::testing
