// One HTTP/1.1 connection: reads requests, calls their handlers, writes answers (private).
#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "gateway/access_log.h"
#include "gateway/http_types.h"
#include "gateway/server_state.h"
#include "gateway/session_writer.h"
#include "gateway/temp_file.h"

namespace quilt::gateway {

// Lives on its own strand (the socket's executor) and is kept alive by its pending operations;
// every member below is touched only on that strand. The public functions other than the
// constructor are safe from any thread: they post.
//
// Life of a request: await its first byte (idle or first-request timeout) → header (read_timeout
// from that byte) → route → body, in memory or streamed to a temp file → handler → the writer's
// answer → next request (keep-alive) or a lingering close. While an answer is pending, a 1-byte
// "watch" read notices a client that hangs up.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `counted`: takes part in active_connections() and max_connections (not a 503 reject).
  Session(boost::asio::ip::tcp::socket&& socket, std::shared_ptr<ServerState> state, bool counted);
  ~Session();

  void start();              // serve requests
  void reject_overloaded();  // answer 503 + Retry-After at once, then close
  void drain();              // the server stops: close now if between requests
  void close();              // the server stops for good: close now

  // Posts `task(*this)` to the strand, keeping this session alive until it ran. Thread-safe.
  void run_on_strand(std::function<void(Session&)> task);

  // The writer's requests, run on the strand; `exchange` names the request they answer.
  void writer_send(uint64_t exchange, int status, const std::string& content_type, std::string body,
                   const HeaderList& headers);
  void writer_start_stream(uint64_t exchange, int status, const std::string& content_type,
                           const HeaderList& headers);
  void writer_chunk(uint64_t exchange, std::string data);
  void writer_end_stream(uint64_t exchange);
  void writer_abandoned(uint64_t exchange);

 private:
  enum class Phase {
    kAwaitRequest,     // no byte of the next request yet
    kReadingRequest,   // header or body arriving
    kResponding,       // handler called (or the session's own error) and answer not yet sent
    kBetweenRequests,  // answer sent, keep-alive: waiting for the watch read to end
    kLingering,        // answer sent, closing: write side shut, discarding input for a moment
    kClosed,
  };

  void do_await_request();
  void on_first_bytes(boost::beast::error_code ec, size_t n);
  void do_read_header();
  void on_header(boost::beast::error_code ec, size_t n);
  void route_request();
  void then_continue(void (Session::*next)());  // "100 Continue" when the client asked for it
  void do_read_memory_body();
  void on_memory_body(boost::beast::error_code ec, size_t n);
  void do_read_file_chunk();
  void on_file_chunk(boost::beast::error_code ec, size_t n);
  void on_read_error(boost::beast::error_code ec);
  void dispatch();
  void do_watch();
  void on_watch(boost::beast::error_code ec, size_t n);

  // The session's own answers (404, 413, ...): the envelope, then keep-alive or close.
  void respond_error(const Status& status, bool close, const HeaderList& headers = {});
  bool answerable(uint64_t exchange) const;
  void queue_write(std::string bytes);
  void do_write();
  void on_write(boost::beast::error_code ec, size_t n);
  void finish_response();
  void resume();
  void do_linger();
  void on_linger(boost::beast::error_code ec, size_t n);
  void close_now();
  // The exchange's access-log line, once (`complete`: the answer was fully written).
  void log_exchange(bool complete);

  // Constant after construction
  boost::beast::tcp_stream stream_;
  const std::shared_ptr<ServerState> state_;
  const bool counted_;

  // Touched only on the strand
  Phase phase_ = Phase::kAwaitRequest;
  bool first_request_ = true;
  bool accepted_draining_ = false;  // opened during the drain: one answer, health routes only
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::empty_body>> header_parser_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> memory_parser_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::buffer_body>> file_parser_;
  std::optional<TempFileWriter> upload_;
  std::unique_ptr<char[]> upload_buf_;  // one chunk of an upload between socket and file

  HttpRequest request_;  // the handler's, by reference, during its call; dropped once answered
  // The access-log record of the request being read or answered (null between requests), the
  // status sent, and the cause of an error answer (its envelope's message).
  std::shared_ptr<AccessRecord> access_;
  int sent_status_ = 0;
  std::string sent_error_;
  const Handler* handler_ = nullptr;
  unsigned version_ = 11;  // 10 or 11: the answer's version
  bool keep_alive_ = true;
  uint64_t exchange_ = 0;
  std::weak_ptr<SessionWriter> writer_;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool streaming_ = false;
  bool chunked_ = false;
  bool watching_ = false;
  // Set while a half-closed client waits for its answer: with no read pending, nothing else
  // keeps this session alive until the writer's answer arrives.
  std::shared_ptr<Session> half_closed_hold_;

  std::deque<std::string> write_queue_;  // deque: pushing never moves the strings being written
  size_t queued_bytes_ = 0;
  std::vector<boost::asio::const_buffer> write_buffers_;
  size_t writing_items_ = 0;  // front items of write_queue_ in the async_write in flight
  bool writing_ = false;
  std::array<char, 1024> linger_buf_{};
};

}  // namespace quilt::gateway
