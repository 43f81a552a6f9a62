// What one client can hold in the server: a stream's send buffer and how long a write may stall.
#include <gtest/gtest.h>

#include <atomic>

#include "gateway/http_server.h"
#include "tests/gateway/server_fixture.h"

namespace quilt::gateway::testing {
namespace {

const std::string kGetStream = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";

class HttpBoundsTest : public ServerFixture {
 protected:
  // A stream that writes `chunk` bytes every `period` until the writer refuses (the client is
  // gone) or `max_bytes` went out; counts what the server accepted and notes the disconnect.
  void add_producer(size_t chunk, std::chrono::milliseconds period, size_t max_bytes) {
    router_.add("GET", "/stream", [=, this](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      w->start_stream(200, "text/event-stream");
      w->on_disconnect([this] { disconnected_ = true; });
      spawn([=, this] {
        const std::string data(chunk, 'x');
        while (accepted_ < max_bytes && w->write_chunk(data)) {
          accepted_ += chunk;
          if (period.count() > 0) std::this_thread::sleep_for(period);
        }
        // All of it accepted: end the stream as every real handler does. A writer dropped
        // without its end closes the connection, and with it whatever was still queued.
        if (accepted_ >= max_bytes) w->end_stream();
        finished_ = true;
      });
    });
  }

  std::atomic<size_t> accepted_{0};
  std::atomic<bool> disconnected_{false};
  std::atomic<bool> finished_{false};
};

// Issue 11: 50 streaming clients that never read pinned 1 GB (32 MiB each) and were not dropped.
// A client that reads nothing is cut off once max_send_buffer_bytes wait for it, and its handler
// hears of it (the platform cancels the request in the engine on that signal).
TEST_F(HttpBoundsTest, AStreamWhoseClientNeverReadsIsDroppedAtTheSendBufferBound) {
  add_producer(16 << 10, std::chrono::milliseconds(0), size_t{1} << 30);
  ServerOptions o;
  o.max_send_buffer_bytes = 256 << 10;
  o.write_timeout = std::chrono::seconds(60);  // not what drops it here
  start_server(o);
  RawClient c(server_->port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(c.send(kGetStream));
  // Never read.
  ASSERT_TRUE(eventually([&] { return disconnected_.load(); }, std::chrono::seconds(10)));
  ASSERT_TRUE(eventually([&] { return finished_.load(); }, std::chrono::seconds(2)));
  // What the client's and the server's kernels buffer, plus the bound: far below the gigabyte
  // the producer would have written.
  EXPECT_LT(accepted_.load(), size_t{32} << 20);
  EXPECT_TRUE(eventually([&] { return server_->active_connections() == 0; }, std::chrono::seconds(2)));
}

// A slow trickle never fills the send buffer, but a write that stalls past write_timeout (the
// client stopped reading) drops the client all the same.
TEST_F(HttpBoundsTest, AWriteStalledPastTheWriteTimeoutDropsTheClient) {
  add_producer(64 << 10, std::chrono::milliseconds(20), size_t{1} << 30);
  ServerOptions o;
  o.max_send_buffer_bytes = 1u << 30;  // not what drops it here
  o.write_timeout = std::chrono::seconds(1);
  start_server(o);
  RawClient c(server_->port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(c.send(kGetStream));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return disconnected_.load(); }, std::chrono::seconds(15)));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_TRUE(eventually([&] { return server_->active_connections() == 0; }, std::chrono::seconds(2)));
}

// A client that reads as fast as its stream is produced keeps it, however long, through a small
// send buffer.
TEST_F(HttpBoundsTest, AClientThatReadsGetsItsWholeStreamThroughASmallSendBuffer) {
  add_producer(4 << 10, std::chrono::milliseconds(1), 2u << 20);
  ServerOptions o;
  o.max_send_buffer_bytes = 64 << 10;
  start_server(o);
  auto c = connect();
  ASSERT_TRUE(c->send(kGetStream));
  ASSERT_TRUE(c->read_header());
  size_t got = 0;
  while (got < (2u << 20)) {
    auto chunk = c->read_chunk();
    ASSERT_TRUE(chunk) << "after " << got << " bytes";
    got += chunk->size();
  }
  EXPECT_EQ(got, size_t{2} << 20);
  EXPECT_FALSE(disconnected_);
}

}  // namespace
}  // namespace quilt::gateway::testing
