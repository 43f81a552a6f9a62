// HttpServer over real sockets: chunked streams answered from other threads, disconnects,
// the connection limit and a draining stop.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>

#include "gateway/http_server.h"
#include "tests/gateway/server_fixture.h"

namespace quilt::gateway::testing {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

const std::string kGetStream = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";

class HttpStreamTest : public ServerFixture {};

TEST_F(HttpStreamTest, ChunksFromAnotherThreadArriveIncrementally) {
  std::atomic<bool> last_sent{false};
  router_.add("GET", "/stream", [&](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
    spawn([w, &last_sent] {
      for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(50ms);
        if (i == 2) last_sent = true;
        EXPECT_TRUE(w->write_chunk("data: " + std::to_string(i) + "\n\n"));
      }
      w->end_stream();
    });
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(kGetStream));
  auto head = c->read_header();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->header("content-type"), "text/event-stream");
  EXPECT_EQ(head->header("cache-control"), "no-cache");
  auto first = c->read_chunk();
  ASSERT_TRUE(first);
  EXPECT_FALSE(last_sent) << "the first chunk must arrive before the last is written";
  EXPECT_EQ(*first, "data: 0\n\n");
  EXPECT_EQ(c->read_chunk(), "data: 1\n\n");
  EXPECT_EQ(c->read_chunk(), "data: 2\n\n");
  EXPECT_EQ(c->read_chunk(), "");  // the last chunk
  EXPECT_TRUE(c->buffered().empty());

  // Keep-alive after the stream: the next request on the same connection is served.
  last_sent = false;
  ASSERT_TRUE(c->send(kGetStream));
  auto again = c->read_response();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

TEST_F(HttpStreamTest, ClientLeavingMidStreamIsNoticedQuickly) {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<ResponseWriter> writer;
  Clock::time_point disconnected_at{};
  router_.add("GET", "/stream", [&](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream(200, "text/event-stream");
    w->write_chunk("data: first\n\n");
    w->on_disconnect([&] {
      std::lock_guard lock(mu);
      disconnected_at = Clock::now();
      cv.notify_all();
    });
    std::lock_guard lock(mu);
    writer = w;  // the "engine" keeps it, as a long generation would
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(kGetStream));
  ASSERT_TRUE(c->read_header());
  ASSERT_EQ(c->read_chunk(), "data: first\n\n");
  const auto closed_at = Clock::now();
  c->close();

  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return disconnected_at != Clock::time_point{}; }));
  EXPECT_LT(disconnected_at - closed_at, 500ms);
  EXPECT_FALSE(writer->connected());
  EXPECT_FALSE(writer->write_chunk("data: late\n\n"));
  writer->end_stream();  // ignored, harmless

  // A callback registered after the fact runs too (posted to the connection's thread).
  std::promise<void> late;
  writer->on_disconnect([&] { late.set_value(); });
  lock.unlock();
  EXPECT_EQ(late.get_future().wait_for(500ms), std::future_status::ready);
  EXPECT_TRUE(eventually([&] { return server_->active_connections() == 0; }, 1000ms));
}

TEST_F(HttpStreamTest, ThirdConnectionOverTheLimitGets503) {
  router_.add("GET", "/ok", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(200, "text/plain", "ok");
  });
  ServerOptions o;
  o.max_connections = 2;
  start_server(o);
  const std::string req = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
  auto c1 = connect();
  auto c2 = connect();
  for (auto* c : {c1.get(), c2.get()}) {
    ASSERT_TRUE(c->send(req));
    auto res = c->read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
  auto c3 = connect();
  c3->send(req);
  auto res = c3->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->header("retry-after"), "1");
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "overloaded_error");
  EXPECT_TRUE(c3->wait_closed(3000ms));

  // The two admitted connections still work; once one leaves, a newcomer is admitted.
  ASSERT_TRUE(c1->send(req));
  ASSERT_TRUE(c1->read_response());
  c2->close();
  ASSERT_TRUE(eventually([&] { return server_->active_connections() == 1; }, 1000ms));
  auto c4 = connect();
  ASSERT_TRUE(c4->send(req));
  res = c4->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpStreamTest, StopLetsAnInFlightRequestFinish) {
  std::atomic<bool> handler_started{false};
  router_.add("GET", "/slow", [&](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    handler_started = true;
    spawn([w] {
      std::this_thread::sleep_for(300ms);
      w->send(200, "text/plain", "done");
    });
  });
  start_server();
  auto idle = connect();  // an idle connection is closed at once by stop()
  auto c = connect();
  ASSERT_TRUE(c->send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return handler_started.load(); }, 2000ms));

  const auto t0 = Clock::now();
  std::thread stopper([&] { server_->stop(std::chrono::milliseconds(5000)); });
  auto res = c->read_response(3000ms);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "done");
  EXPECT_EQ(res->header("connection"), "close");  // draining: no keep-alive
  EXPECT_TRUE(idle->wait_closed(1000ms));
  c->close();
  stopper.join();
  EXPECT_LT(Clock::now() - t0, 2000ms);
  EXPECT_EQ(server_->active_connections(), 0);
  EXPECT_FALSE(RawClient(server_->port()).ok());  // no longer listening
}

TEST_F(HttpStreamTest, StopAfterTheDrainClosesAPendingAnswerAndReportsIt) {
  std::promise<void> disconnected;
  std::shared_ptr<ResponseWriter> kept;
  std::atomic<bool> have_kept{false};
  router_.add("GET", "/never", [&](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->on_disconnect([&] { disconnected.set_value(); });
    kept = w;
    have_kept = true;
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send("GET /never HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(eventually([&] { return have_kept.load(); }, 2000ms));
  const auto t0 = Clock::now();
  server_->stop(std::chrono::milliseconds(200));
  EXPECT_LT(Clock::now() - t0, 1500ms);
  EXPECT_EQ(disconnected.get_future().wait_for(0ms), std::future_status::ready);
  EXPECT_TRUE(c->wait_closed(1000ms));
  // The server is gone; the writer the engine still holds does nothing.
  kept->send(200, "text/plain", "too late");
  EXPECT_FALSE(kept->connected());
}

}  // namespace
}  // namespace quilt::gateway::testing
