// Runs the real quilt binary for the CLI tests: one command to completion with its output and
// exit code, or `quilt serve` in the background on a free port.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace quilt::testing {

struct QuiltRun {
  int code = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

inline std::ostream& operator<<(std::ostream& os, const QuiltRun& r) {
  return os << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

// Runs `quilt ARGS` with the QUILT_* variables of this process removed and `env` set.
inline QuiltRun run_quilt(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) {
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close(out[0]);
    close(err[0]);
    for (const char* v : {"QUILT_URL", "QUILT_KEY", "QUILT_ADMIN_KEY"}) unsetenv(v);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv = {const_cast<char*>(QUILT_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(QUILT_BINARY, argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  QuiltRun r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 120000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `quilt serve` in the background with its output in a file; stopped (SIGTERM) on destruction.
class ServeProcess {
 public:
  // Starts `quilt serve --port 0 ARGS` with QUILT_ADMIN_KEY=admin_key; port() is 0 if it did not
  // come up within a minute (log() says why).
  // Its output goes to DIR/LOG_NAME.
  ServeProcess(const std::filesystem::path& dir, const std::string& admin_key, const std::vector<std::string>& args,
               const std::string& log_name = "serve.log")
      : log_path_(dir / log_name) {
    std::filesystem::remove(log_path_);  // never read an earlier server's address
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      setenv("QUILT_ADMIN_KEY", admin_key.c_str(), 1);
      std::vector<std::string> all = {"serve", "--port", "0"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv = {const_cast<char*>(QUILT_BINARY)};
      for (const auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(QUILT_BINARY, argv.data());
      _exit(127);
    }
    const std::regex address(R"(quilt serving \S+ on http://[^:]+:(\d+))");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string text = log();
      if (std::regex_search(text, m, address)) {
        port_ = std::stoi(m[1]);
        return;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~ServeProcess() { stop(); }

  // The exit status after SIGTERM (0: drained cleanly), or -1.
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::filesystem::path log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace quilt::testing
