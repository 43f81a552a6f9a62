// HttpServer against what issue 11's probes found: smuggling through Transfer-Encoding, half-closed
// clients, and connections opened during a drain.
#include "gateway/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "tests/gateway/server_fixture.h"

namespace quilt::gateway::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class HttpHardeningTest : public ServerFixture {
 protected:
  void SetUp() override {
    router_.add("POST", "/echo", [this](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
      ++calls_;
      w->send(200, "text/plain", req.body);
    });
    router_.add("GET", "/readyz", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      send_error(*w, 503, "not ready", "overloaded_error", "", {{"Retry-After", "1"}});
    });
    router_.add("GET", "/other", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      w->send(200, "text/plain", "other");
    });
  }
  std::atomic<int> calls_{0};
};

// RFC 9112 §6.3: a Transfer-Encoding whose final coding is not chunked (or any coding we do not
// decode) leaves the body length unknown; the body must never be read as the next request.
TEST_F(HttpHardeningTest, TransferEncodingOtherThanChunkedIs400AndCloses) {
  start_server();
  for (const char* te : {"gzip", "chunked, gzip", "gzip, chunked", "identity", "chunked\r\nTransfer-Encoding: gzip"}) {
    auto c = connect();
    const std::string smuggled = "GET /other HTTP/1.1\r\nHost: t\r\n\r\n";
    ASSERT_TRUE(c->send(std::string("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ") + te +
                        "\r\n\r\n" + smuggled));
    auto res = c->read_response();
    ASSERT_TRUE(res) << te;
    EXPECT_EQ(res->status, 400) << te;
    json j = json::parse(res->body, nullptr, false);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << te << ": " << res->body;
    EXPECT_EQ(res->header("connection"), "close") << te;
    EXPECT_TRUE(c->wait_closed(3000ms)) << te << ": the smuggled request was answered";
  }
  EXPECT_EQ(calls_.load(), 0);
  // Plain chunked still works, and its case does not matter.
  auto c = connect();
  ASSERT_TRUE(c->send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "abc");
}

TEST_F(HttpHardeningTest, AClientThatHalfClosesAfterItsRequestGetsTheAnswer) {
  router_.add("POST", "/slow", [this](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    std::string body = req.body;
    spawn([w, body] {
      std::this_thread::sleep_for(200ms);  // the FIN arrives while the answer is pending
      w->send(200, "text/plain", "done:" + body);
    });
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"));
  c->shutdown_write();
  auto res = c->read_response(3000ms);
  ASSERT_TRUE(res) << "no answer after a half-close";
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "done:hi");
  EXPECT_TRUE(c->wait_closed(3000ms));
}

TEST_F(HttpHardeningTest, DuringTheDrainNewConnectionsGetReadyzAndA503) {
  std::atomic<bool> started{false};
  router_.add("GET", "/slow", [&](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    started = true;
    spawn([w] {
      std::this_thread::sleep_for(600ms);
      w->send(200, "text/plain", "done");
    });
  });
  start_server();
  auto busy = connect();
  ASSERT_TRUE(busy->send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return started.load(); }, 2000ms));
  const uint16_t port = server_->port();  // port() waits for stop() to return
  std::thread stopper([&] { server_->stop(std::chrono::milliseconds(3000)); });
  std::this_thread::sleep_for(100ms);  // the drain has begun

  auto probe = std::make_unique<RawClient>(port);
  ASSERT_TRUE(probe->ok()) << "a connection during the drain was refused";
  ASSERT_TRUE(probe->send("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto res = probe->read_response(2000ms);
  ASSERT_TRUE(res) << "/readyz got no answer during the drain";
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->header("connection"), "close");

  auto other = std::make_unique<RawClient>(port);
  ASSERT_TRUE(other->send("GET /other HTTP/1.1\r\nHost: t\r\n\r\n"));
  res = other->read_response(2000ms);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_FALSE(res->header("retry-after").empty());

  res = busy->read_response(3000ms);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "done");
  stopper.join();
  EXPECT_FALSE(RawClient(port).ok());  // no longer listening once stopped
}

}  // namespace
}  // namespace quilt::gateway::testing
