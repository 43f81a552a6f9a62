// A GoogleTest fixture running an HttpServer on 127.0.0.1, port 0, with the test's own routes.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/http_server.h"
#include "gateway/router.h"
#include "tests/gateway/raw_http_client.h"

namespace quilt::gateway::testing {

class ServerFixture : public ::testing::Test {
 protected:
  // Add routes to router_ first: the router is read-only once the server runs.
  void start_server(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    if (options.threads == 0) options.threads = 2;
    server_ = std::make_unique<HttpServer>(options, router_);
    Status s = server_->start();
    ASSERT_TRUE(s.ok()) << s.to_string();
    ASSERT_NE(server_->port(), 0);
  }

  std::unique_ptr<RawClient> connect() { return std::make_unique<RawClient>(server_->port()); }

  // Polls `pred` every 5 ms until true or `timeout`.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // Runs `fn` on a thread of its own, as the engine would answer; thread-safe (handlers call it).
  template <class Fn>
  void spawn(Fn fn) {
    std::lock_guard lock(threads_mu_);
    threads_.emplace_back(std::move(fn));
  }

  void TearDown() override {
    if (server_) server_->stop(std::chrono::milliseconds(500));
    std::lock_guard lock(threads_mu_);
    for (auto& t : threads_) t.join();
  }

  Router router_;  // declared first: outlives the server
  std::unique_ptr<HttpServer> server_;
  std::mutex threads_mu_;
  std::vector<std::thread> threads_;  // from spawn(), joined after the server stops
};

}  // namespace quilt::gateway::testing
