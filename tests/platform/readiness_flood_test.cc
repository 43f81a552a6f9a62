// Readiness under a flood of requests (issue 11): while clients hammer the public port with
// completions, streams, large prompts and malformed bodies as fast as it answers them, /readyz
// still answers 200 promptly, on the admin port (its own thread) and on the public port itself.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/gateway/raw_http_client.h"
#include "tests/platform/server_fixture.h"

namespace quilt::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using gateway::testing::RawClient;

// How much slower a sanitizer build runs this (GCC defines __SANITIZE_*, clang has __has_feature).
#if defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 10;
#elif defined(__SANITIZE_ADDRESS__)
constexpr int kSlowdown = 4;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kSlowdown = 10;
#elif __has_feature(address_sanitizer)
constexpr int kSlowdown = 4;
#else
constexpr int kSlowdown = 1;
#endif
#else
constexpr int kSlowdown = 1;
#endif
// The admin port has a thread of its own: its /readyz takes a few ms however busy the public port
// is (2-7 ms measured, release and ASan, on a loaded 2-core machine). The public port's /readyz
// waits behind the flood's work on the same I/O threads (tokenizing 256 KiB prompts: 150-180 ms
// release, ~800 ms ASan), bounded well under a Kubernetes probe's default 1 s timeout. A starved
// prober would see seconds, or the read timeout.
constexpr auto kAdminPromptly = 250ms * kSlowdown;
constexpr auto kPublicPromptly = 1000ms * kSlowdown;
constexpr int kFloodClients = 24;

class ReadinessFloodTest : public ServerTest {
 protected:
  void configure(app::ServerConfig& c) override {
    c.admin_port = 0;
    c.http.threads = 2;
    c.http.max_connections = 64;  // above the flood: every flooding client gets in
  }

  // A tenant key, made through the admin port (the public port has no admin routes here).
  std::string tenant_key() {
    auto admin = [&](const std::string& path, const std::string& body) {
      HttpConnection c(server_->admin_port());
      std::map<std::string, std::string> h = {{"Authorization", std::string("Bearer ") + kAdminKey}};
      if (!body.empty()) h["Content-Type"] = "application/json";
      HttpResponse r = c.request("POST", path, body, h);
      EXPECT_EQ(r.status, 201) << path << ": " << r.body;
      return json::parse(r.body, nullptr, false);
    };
    const json t = admin("/admin/v1/tenants", R"({"name":"flood"})");
    return admin("/admin/v1/tenants/" + t.value("id", "") + "/keys", "").value("key", "");
  }

  // Clients that send request after request on keep-alive connections until stopped: a
  // completion, a streamed one, a ~256 KiB prompt (tokenized, then refused as too long) and a
  // malformed body, in turn. Counts the answers, so a test knows the flood really ran.
  void start_flood(const std::string& key) {
    const std::string completion =
        R"({"model":"tiny-llama","prompt":"The quick brown fox","max_tokens":16,"ignore_eos":true})";
    const std::string stream =
        R"({"model":"tiny-llama","prompt":"Once","max_tokens":16,"ignore_eos":true,"stream":true})";
    std::string big_prompt;
    while (big_prompt.size() < (256u << 10)) big_prompt += "lorem ipsum dolor sit amet ";
    const std::string big = R"({"model":"tiny-llama","prompt":")" + big_prompt + R"(","max_tokens":1})";
    const std::string malformed = R"({"model":"tiny-llama","prompt":)";
    const std::vector<std::string> bodies = {completion, stream, big, malformed};
    for (int i = 0; i < kFloodClients; ++i) {
      flood_.emplace_back([this, key, bodies, i] {
        std::unique_ptr<RawClient> c;
        for (size_t n = static_cast<size_t>(i); !stop_; ++n) {
          if (!c || !c->ok()) c = std::make_unique<RawClient>(server_->port());
          const std::string& body = bodies[n % bodies.size()];
          const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + key +
                                  "\r\nContent-Type: application/json\r\nContent-Length: " +
                                  std::to_string(body.size()) + "\r\n\r\n" + body;
          auto r = c->send(req) ? c->read_response(30s) : std::nullopt;
          if (!r) {
            c.reset();  // closed or slow: a new connection
            continue;
          }
          ++answered_;
          if (r->status >= 500 && r->status != 503) ++server_errors_;
        }
      });
    }
  }

  void stop_flood() {
    stop_ = true;
    for (auto& t : flood_) t.join();
    flood_.clear();
  }

  void TearDown() override {
    stop_flood();
    ServerTest::TearDown();
  }

  // `probes` GET /readyz, each on a new connection, every 50 ms; returns the slowest, and counts
  // the answers that were not 200.
  std::chrono::milliseconds probe_readyz(uint16_t port, int probes, int& not_ready) {
    std::chrono::milliseconds slowest{0};
    for (int i = 0; i < probes; ++i) {
      const auto t0 = Clock::now();
      RawClient c(port);
      std::optional<gateway::testing::RawResponse> r;
      if (c.ok() && c.send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")) r = c.read_response(kPublicPromptly * 3);
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
      slowest = std::max(slowest, took);
      if (!r || r->status != 200) ++not_ready;
      std::this_thread::sleep_for(50ms);
    }
    return slowest;
  }

  // Waits until the flood has had `n` answers (it is under way), at most 60 s.
  bool flood_running(int n) {
    const auto deadline = Clock::now() + 60s;
    while (answered_ < n && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    return answered_ >= n;
  }

  std::vector<std::thread> flood_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::atomic<int> server_errors_{0};
};

TEST_F(ReadinessFloodTest, ReadyzAnswersPromptlyOnBothPortsWhileThePublicPortIsFlooded) {
  const std::string key = tenant_key();
  ASSERT_FALSE(key.empty());
  start_flood(key);
  ASSERT_TRUE(flood_running(4 * kFloodClients)) << "the flood never got going: " << answered_;

  int admin_not_ready = 0, public_not_ready = 0;
  const auto before = answered_.load();
  const auto admin_slowest = probe_readyz(server_->admin_port(), 30, admin_not_ready);
  const auto public_slowest = probe_readyz(server_->port(), 30, public_not_ready);
  const auto during = answered_.load() - before;

  // The flood went on all through the probes (not a flood that had stalled)...
  EXPECT_GE(during, 2 * kFloodClients);
  EXPECT_EQ(server_errors_, 0);
  // ...and readiness was answered, 200, promptly, every time, on both ports.
  EXPECT_EQ(admin_not_ready, 0);
  EXPECT_EQ(public_not_ready, 0);
  EXPECT_LT(admin_slowest, kAdminPromptly) << "admin port";
  EXPECT_LT(public_slowest, kPublicPromptly) << "public port";
  RecordProperty("flood_answers_during_probes", during);
  RecordProperty("admin_readyz_slowest_ms", static_cast<int>(admin_slowest.count()));
  RecordProperty("public_readyz_slowest_ms", static_cast<int>(public_slowest.count()));
  std::printf("flood answers during probes: %d; slowest /readyz: admin %lld ms, public %lld ms\n",
              during, static_cast<long long>(admin_slowest.count()),
              static_cast<long long>(public_slowest.count()));
}

}  // namespace
}  // namespace quilt::testing
