// HttpServer over real sockets: routing, keep-alive, envelopes, limits, uploads and timeouts.
#include "gateway/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/gateway/server_fixture.h"

namespace quilt::gateway::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body,
                 const std::string& extra = "") {
  return "POST " + target +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

// The error envelope of API.md, checked field by field; returns error.type.
std::string expect_envelope(const RawResponse& res, int status) {
  EXPECT_EQ(res.status, status);
  EXPECT_EQ(res.header("content-type"), "application/json");
  json j = json::parse(res.body, nullptr, false);
  EXPECT_TRUE(j.is_object() && j.contains("error")) << res.body;
  if (!j.is_object() || !j.contains("error")) return "";
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
  EXPECT_TRUE(e["param"].is_null());
  EXPECT_EQ(e["code"], e["type"]);
  return e["type"].get<std::string>();
}

class HttpServerTest : public ServerFixture {
 protected:
  void SetUp() override {
    router_.add("GET", "/v1/items/{id}", [](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
      json j = {{"id", req.params["id"]}, {"q", req.query["q"]}, {"x", req.header("x-test")}};
      w->send(200, "application/json", j.dump());
    });
    router_.add("POST", "/echo", [](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
      w->send(200, "text/plain", req.body);
    });
  }
};

TEST_F(HttpServerTest, GetWithKeepAliveServesTwoRequestsOnOneConnection) {
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(get("/v1/items/a%20b/?q=x%2By+z", "X-Test: hello\r\n")));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->header("connection"), "close");
  json j = json::parse(res->body);
  EXPECT_EQ(j["id"], "a b");
  EXPECT_EQ(j["q"], "x+y z");
  EXPECT_EQ(j["x"], "hello");

  ASSERT_TRUE(c->send(get("/v1/items/7")));
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["id"], "7");
  EXPECT_EQ(server_->active_connections(), 1);
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(get("/nope")));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 404), "not_found_error");

  ASSERT_TRUE(c->send(post("/v1/items/3", "")));  // same connection: 404 kept it alive
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 405), "method_not_allowed");
  EXPECT_EQ(res->header("allow"), "GET");
}

TEST_F(HttpServerTest, MemoryBodyArrivesWhole) {
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(post("/echo", R"({"prompt":"hi"})")));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"prompt":"hi"})");
  // Chunked request bodies too, and "Expect: 100-continue" gets its interim answer.
  ASSERT_TRUE(
      c->send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
              "Expect: 100-continue\r\n\r\n"));
  auto interim = c->read_header();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c->send("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "abcde");
}

TEST_F(HttpServerTest, BodyOverLimitIs413AndCloses) {
  ServerOptions o;
  o.max_body_bytes = 1024;
  start_server(o);
  auto c = connect();
  ASSERT_TRUE(c->send(post("/echo", std::string(4096, 'x'))));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 413), "payload_too_large");
  EXPECT_EQ(res->header("connection"), "close");
  EXPECT_TRUE(c->wait_closed(3000ms));

  // Chunked, so the size shows only while reading.
  auto c2 = connect();
  std::string chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
  ASSERT_TRUE(c2->send(chunked + "0\r\n\r\n"));
  res = c2->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 413), "payload_too_large");
}

TEST_F(HttpServerTest, HeaderOverLimitIs400AndCloses) {
  ServerOptions o;
  o.max_header_bytes = 1024;
  start_server(o);
  auto c = connect();
  ASSERT_TRUE(c->send(get("/v1/items/1", "X-Big: " + std::string(4096, 'h') + "\r\n")));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 400), "invalid_request_error");
  EXPECT_TRUE(c->wait_closed(3000ms));
}

TEST_F(HttpServerTest, UploadIsStreamedToAFileRemovedWithTheRequest) {
  const fs::path dir =
      fs::temp_directory_path() / ("quilt-gw-upload-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string payload(5 << 20, '\0');
  std::mt19937 rng(42);
  for (char& ch : payload) ch = static_cast<char>(rng());

  std::atomic<bool> same{false};
  fs::path seen;
  router_.add(
      "PUT", "/upload/{name}",
      [&](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
        std::ifstream in(req.body_file, std::ios::binary);
        std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (req.params["name"] == "empty") {  // no body: still a file, an empty one
          return w->send(in && got.empty() ? 204 : 500, "text/plain", "");
        }
        seen = req.body_file;
        same = req.body.empty() && got == payload && req.body_file.parent_path() == dir;
        w->send(201, "application/json", "{}");
      },
      BodyMode::kFile);
  ServerOptions o;
  o.upload_dir = dir;
  o.max_body_bytes = 1024;  // kFile bodies have their own limit
  o.max_upload_bytes = 6 << 20;
  start_server(o);

  auto c = connect();
  ASSERT_TRUE(c->send("PUT /upload/a HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                      std::to_string(payload.size()) + "\r\n\r\n"));
  ASSERT_TRUE(c->send(payload));
  auto res = c->read_response(10000ms);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 201);
  EXPECT_TRUE(same);
  // The answer went out after the request was dropped: the file is already gone.
  EXPECT_FALSE(seen.empty());
  EXPECT_FALSE(fs::exists(seen));

  ASSERT_TRUE(c->send("PUT /upload/empty HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);

  // Over max_upload_bytes: 413 from the Content-Length alone, nothing written.
  ASSERT_TRUE(c->send("PUT /upload/b HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                      std::to_string(7 << 20) + "\r\n\r\n"));
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 413), "payload_too_large");
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST_F(HttpServerTest, SlowlorisClientIsDropped) {
  ServerOptions o;
  o.read_timeout = std::chrono::seconds(1);
  start_server(o);
  auto c = connect();
  const std::string request = get("/v1/items/1");
  const auto t0 = Clock::now();
  bool closed = false;
  for (size_t i = 0; i < request.size() && Clock::now() - t0 < 4s; ++i) {
    c->send(request.substr(i, 1));  // one byte each 250 ms: far too slow for 1 s
    if (c->wait_closed(250ms)) {
      closed = true;
      break;
    }
  }
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(closed);
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 2000ms);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionCloses) {
  ServerOptions o;
  o.idle_timeout = std::chrono::seconds(1);
  start_server(o);
  auto c = connect();
  ASSERT_TRUE(c->send(get("/v1/items/1")));
  ASSERT_TRUE(c->read_response());
  const auto t0 = Clock::now();
  EXPECT_TRUE(c->wait_closed(3000ms));
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_TRUE(eventually([&] { return server_->active_connections() == 0; }, 1000ms));
}

TEST_F(HttpServerTest, HandlerErrorsBecome500AndStatusesMapThroughSendError) {
  router_.add("GET", "/throw", [](HttpRequest&, std::shared_ptr<ResponseWriter>) {
    throw std::runtime_error("boom");
  });
  router_.add("GET", "/drop", [](HttpRequest&, std::shared_ptr<ResponseWriter>) {});
  router_.add("GET", "/busy", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    send_error(*w, Status::ResourceExhausted("tenant over its limit"), "max_tokens");
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(get("/throw")));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 500), "internal_error");

  ASSERT_TRUE(c->send(get("/drop")));  // the writer was dropped unanswered
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 500), "internal_error");

  ASSERT_TRUE(c->send(get("/busy")));
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->header("retry-after"), "1");
  json e = json::parse(res->body)["error"];
  EXPECT_EQ(e["type"], "rate_limit_error");
  EXPECT_EQ(e["param"], "max_tokens");
  EXPECT_EQ(e["message"], "tenant over its limit");
}

TEST_F(HttpServerTest, BadStatusesAndHeadersFromAHandlerCannotBreakTheFraming) {
  router_.add("GET", "/odd", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(204, "", "a body a 204 may not have",
            {{"X-Bad", "a\r\nInjected: 1"}, {"Bad Name", "v"}, {"X-Good", "ok"}});
  });
  router_.add("GET", "/weird", [](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(7, "text/plain", "x");
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(get("/odd")));
  auto res = c->read_header();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  EXPECT_EQ(res->header("x-good"), "ok");
  EXPECT_EQ(res->header("injected"), "");
  EXPECT_EQ(res->header("x-bad"), "");
  ASSERT_TRUE(c->send(get("/weird")));  // nothing of a 204 body came in between
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(res->body, "x");
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send("GET /v1/items/1 HTTP/1.1\r\nBad Header Line\r\n\r\n"));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(expect_envelope(*res, 400), "invalid_request_error");
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(get("/v1/items/1") + post("/echo", "two") + get("/v1/items/3")));
  auto r1 = c->read_response();
  auto r2 = c->read_response();
  auto r3 = c->read_response();
  ASSERT_TRUE(r1 && r2 && r3);
  EXPECT_EQ(json::parse(r1->body)["id"], "1");
  EXPECT_EQ(r2->body, "two");
  EXPECT_EQ(json::parse(r3->body)["id"], "3");
}

TEST_F(HttpServerTest, Http10ClosesAfterTheAnswer) {
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send("GET /v1/items/1 HTTP/1.0\r\n\r\n"));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(c->wait_closed(3000ms));
}

TEST_F(HttpServerTest, AStaleWriterCannotAnswerTheNextRequest) {
  std::shared_ptr<ResponseWriter> stale;
  router_.add("GET", "/keep", [&](HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(200, "text/plain", "first");
    stale = w;
  });
  start_server();
  auto c = connect();
  ASSERT_TRUE(c->send(get("/keep")));
  auto res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "first");
  stale->send(200, "text/plain", "again");  // ignored: already answered
  stale->start_stream(200, "text/plain");
  EXPECT_FALSE(stale->write_chunk("late"));
  ASSERT_TRUE(c->send(get("/v1/items/2")));
  res = c->read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body)["id"], "2");
  EXPECT_FALSE(c->read_header(200ms));  // nothing more on the wire
  EXPECT_TRUE(c->buffered().empty());
}

}  // namespace
}  // namespace quilt::gateway::testing
