// Session: one HTTP/1.1 connection of the Beast server.
#include "gateway/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cstdio>
#include <exception>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gateway/error_response.h"
#include "gateway/request_head.h"

namespace quilt::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kReadSize = 4096;             // first bytes of a request, and the watch read
constexpr size_t kUploadChunk = 256 << 10;     // socket → file copy unit of kFile bodies
constexpr size_t kMaxWriteBatch = 64;          // queue items gathered into one async_write
constexpr auto kLinger = std::chrono::seconds(1);
const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool is_parse_error(const beast::error_code& ec) {
  static const auto& category = http::make_error_code(http::error::bad_target).category();
  return ec.category() == category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

template <class Header>
std::string serialize(const Header& header) {
  std::ostringstream os;
  os << header;  // status line, fields and the blank line
  return os.str();
}

// The message of an error envelope ({"error": {"message": ...}}), for the access log; "" if none.
std::string error_message(const std::string& content_type, const std::string& body) {
  if (content_type.rfind("application/json", 0) != 0 || body.size() > 65536) return "";
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("error") || !j["error"].is_object()) return "";
  const auto& m = j["error"]["message"];
  return m.is_string() ? m.get<std::string>() : "";
}

// Status line and fields of every answer. An out-of-range status becomes 500 and a header that
// would break the framing (CR or LF: header injection) is dropped: Beast would throw or send it.
template <class Body>
void fill_head(http::response<Body>& res, unsigned version, int status,
               const std::string& content_type, const HeaderList& headers, bool keep_alive,
               const std::string& request_id) {
  res.version(version);
  res.result(status >= 100 && status <= 999 ? static_cast<unsigned>(status) : 500u);
  res.set(http::field::server, "quilt");
  if (!request_id.empty()) res.set("X-Request-Id", request_id);  // sanitized: no CR/LF
  if (!content_type.empty()) res.set(http::field::content_type, content_type);
  res.keep_alive(keep_alive);
  for (const auto& [name, value] : headers) {
    if (name.empty() || name.find_first_of("\r\n: ") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      continue;
    }
    res.set(name, value);  // "Connection: close" from a handler counts
  }
}

}  // namespace

Session::Session(tcp::socket&& socket, std::shared_ptr<ServerState> state, bool counted)
    : stream_(std::move(socket)), state_(std::move(state)), counted_(counted) {
  // Counted here, in the accept handler, so the next accept already sees this connection.
  if (counted_) state_->active.fetch_add(1);
}

Session::~Session() {
  if (!counted_) return;
  {
    std::lock_guard lock(state_->mu);
    state_->sessions.erase(this);
    state_->active.fetch_sub(1);
  }
  state_->session_ended.notify_all();
}

void Session::start() {
  accepted_draining_ = state_->draining;
  {
    std::lock_guard lock(state_->mu);
    state_->sessions.emplace(this, weak_from_this());
  }
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&Session::do_await_request, shared_from_this()));
}

void Session::reject_overloaded() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    self->keep_alive_ = false;
    self->respond_error(Status::Unavailable("the server is at its connection limit"), true,
                        {{"Retry-After", "1"}});
  });
}

void Session::drain() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->phase_ == Phase::kAwaitRequest) self->close_now();
  });
}

void Session::close() {
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

void Session::run_on_strand(std::function<void(Session&)> task) {
  net::post(stream_.get_executor(),
            [self = shared_from_this(), task = std::move(task)] { task(*self); });
}

// ---- Reading a request ------------------------------------------------------------------------

void Session::do_await_request() {
  phase_ = Phase::kAwaitRequest;
  request_ = HttpRequest{};
  memory_parser_.reset();
  file_parser_.reset();
  upload_.reset();
  header_parser_.emplace();
  header_parser_->header_limit(state_->options.max_header_bytes);
  // The limit depends on the route, unknown until the header is in: checked by hand then.
  // (Not boost::none: Beast 1.74 compares `length > none`, which is always true.)
  header_parser_->body_limit(std::numeric_limits<uint64_t>::max());
  if (state_->draining && !accepted_draining_) return close_now();
  if (buffer_.size() > 0) return do_read_header();  // the client sent it early
  // A new connection gets read_timeout to start its request; a kept-alive one idle_timeout.
  const auto& o = state_->options;
  stream_.expires_after(first_request_ ? o.read_timeout : o.idle_timeout);
  stream_.async_read_some(buffer_.prepare(kReadSize),
                          beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
}

void Session::on_first_bytes(beast::error_code ec, size_t n) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return close_now();  // idle timeout or the client left: nothing to answer
  buffer_.commit(n);
  do_read_header();
}

void Session::do_read_header() {
  phase_ = Phase::kReadingRequest;
  first_request_ = false;
  access_ = std::make_shared<AccessRecord>();  // the request's time starts at its first byte
  sent_status_ = 0;
  sent_error_.clear();
  // From the first byte on the whole request (headers and an in-memory body) must arrive within
  // read_timeout: a client trickling its headers (slowloris) is dropped.
  stream_.expires_after(state_->options.read_timeout);
  http::async_read_header(stream_, buffer_, *header_parser_,
                          beast::bind_front_handler(&Session::on_header, shared_from_this()));
}

void Session::on_read_error(beast::error_code ec) {
  if (ec == http::error::header_limit) {
    return respond_error(
        Status::InvalidArgument("request header larger than " +
                                std::to_string(state_->options.max_header_bytes) + " bytes"),
        true);
  }
  if (ec == http::error::body_limit) {
    return respond_error(Status::PayloadTooLarge("request body over the limit"), true);
  }
  if (is_parse_error(ec)) {
    return respond_error(Status::InvalidArgument("malformed HTTP request: " + ec.message()), true);
  }
  close_now();  // timeout, reset, end of stream: the client cannot or will not hear an answer
}

void Session::on_header(beast::error_code ec, size_t /*n*/) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return on_read_error(ec);

  const auto& msg = header_parser_->get();
  version_ = msg.version() == 10 ? 10 : 11;
  keep_alive_ = msg.keep_alive();
  const Status head = read_request_head(msg.base(), request_);
  access_->method = request_.method;
  access_->path = request_.path;
  access_->request_id = sanitize_request_id(request_.header("x-request-id"));
  if (access_->request_id.empty()) access_->request_id = new_request_id();
  request_.access = access_;
  if (!head.ok()) return respond_error(head, true);
  // A connection opened during the drain gets an answer only from the health routes: load
  // balancers must see /readyz say 503, not a refused connection.
  if (accepted_draining_ && request_.path != "/readyz" && request_.path != "/healthz") {
    return respond_error(Status::Unavailable("the server is shutting down"),
                         !header_parser_->is_done(), {{"Retry-After", "5"}});
  }
  route_request();
}

void Session::route_request() {
  Router::Match match = state_->router.match(request_.method, request_.path);
  // Without reading a body we cannot find the next request, so an unread body means close.
  const bool has_body = !header_parser_->is_done();
  if (match.handler == nullptr) {
    if (!match.path_known) {
      return respond_error(
          Status::NotFound("no route for " + request_.method + " " + request_.path), has_body);
    }
    std::string allow;
    for (const auto& m : match.allowed_methods) allow += (allow.empty() ? "" : ", ") + m;
    return respond_error(Status::MethodNotAllowed("method " + request_.method +
                                                  " is not allowed on " + request_.path),
                         has_body, {{"Allow", allow}});
  }
  handler_ = match.handler;
  request_.params = std::move(match.params);
  access_->route = std::move(match.pattern);
  const auto& o = state_->options;
  const bool to_file = match.body == BodyMode::kFile;
  if (!has_body && !to_file) return dispatch();
  const uint64_t limit = to_file ? o.max_upload_bytes : o.max_body_bytes;
  if (auto length = header_parser_->content_length(); length && *length > limit) {
    return respond_error(
        Status::PayloadTooLarge("request body of " + std::to_string(*length) +
                                " bytes is over the " + std::to_string(limit) + "-byte limit"),
        true);
  }
  const bool expect_continue =
      has_body && beast::iequals(header_parser_->get()[http::field::expect], "100-continue");
  if (!to_file) {
    memory_parser_.emplace(std::move(*header_parser_));
    memory_parser_->body_limit(limit);  // chunked bodies: checked as the chunks arrive
    header_parser_.reset();
    return expect_continue ? then_continue(&Session::do_read_memory_body) : do_read_memory_body();
  }
  Result<TempFileWriter> file = TempFileWriter::create(o.upload_dir, "quilt-upload-");
  if (!file.ok()) return respond_error(file.status(), true);
  auto remover = std::make_shared<TempFileRemover>();
  remover->paths.push_back(file->path());
  request_.body_file = file->path();
  request_.body_file_owner = std::move(remover);
  upload_.emplace(std::move(file).value());
  if (!has_body) {  // kFile handlers always find a body_file, empty or not
    if (Status closed = upload_->close(); !closed.ok()) return respond_error(closed, true);
    upload_.reset();
    return dispatch();
  }
  if (!upload_buf_) upload_buf_ = std::make_unique<char[]>(kUploadChunk);
  file_parser_.emplace(std::move(*header_parser_));
  file_parser_->body_limit(limit);
  header_parser_.reset();
  expect_continue ? then_continue(&Session::do_read_file_chunk) : do_read_file_chunk();
}

void Session::then_continue(void (Session::*next)()) {
  net::async_write(stream_, net::buffer(kContinue),
                   [self = shared_from_this(), next](beast::error_code ec, size_t) {
                     if (self->phase_ == Phase::kClosed) return;
                     if (ec) return self->close_now();
                     ((*self).*next)();
                   });
}

void Session::do_read_memory_body() {
  http::async_read(stream_, buffer_, *memory_parser_,
                   beast::bind_front_handler(&Session::on_memory_body, shared_from_this()));
}

void Session::on_memory_body(beast::error_code ec, size_t /*n*/) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return on_read_error(ec);
  request_.body = std::move(memory_parser_->get().body());
  memory_parser_.reset();
  dispatch();
}

void Session::do_read_file_chunk() {
  auto& body = file_parser_->get().body();
  body.data = upload_buf_.get();
  body.size = kUploadChunk;
  // Uploads may be gigabytes: each chunk, not the whole body, must arrive within read_timeout
  // (which also makes read_timeout a floor of kUploadChunk bytes per read_timeout).
  stream_.expires_after(state_->options.read_timeout);
  http::async_read(stream_, buffer_, *file_parser_,
                   beast::bind_front_handler(&Session::on_file_chunk, shared_from_this()));
}

void Session::on_file_chunk(beast::error_code ec, size_t /*n*/) {
  if (phase_ == Phase::kClosed) return;
  if (ec == http::error::need_buffer) ec = {};  // the chunk buffer is full: not an error
  if (ec) return on_read_error(ec);
  const size_t got = kUploadChunk - file_parser_->get().body().size;
  Status written = upload_->write(upload_buf_.get(), got);
  if (written.ok() && file_parser_->is_done()) written = upload_->close();
  if (!written.ok()) return respond_error(written, true);
  if (!file_parser_->is_done()) return do_read_file_chunk();
  upload_.reset();
  file_parser_.reset();
  dispatch();
}

// ---- Calling the handler ----------------------------------------------------------------------

void Session::dispatch() {
  phase_ = Phase::kResponding;
  ++exchange_;
  response_started_ = response_complete_ = streaming_ = chunked_ = false;
  auto writer = std::make_shared<SessionWriter>(weak_from_this(), state_, exchange_);
  writer_ = writer;
  do_watch();
  try {
    (*handler_)(request_, writer);
  } catch (const std::exception& e) {
    send_error(*writer, Status::Internal(std::string("request handler failed: ") + e.what()));
  } catch (...) {
    send_error(*writer, Status::Internal("request handler failed"));
  }
}

// Reads while an answer is pending, only to notice a client that hangs up; bytes of a next
// (pipelined) request are kept for later.
void Session::do_watch() {
  if (watching_ || phase_ != Phase::kResponding) return;
  // A client pipelining that much before its answer: stop reading; a write error still finds it.
  if (buffer_.size() >= state_->options.max_header_bytes + kReadSize) return;
  watching_ = true;
  stream_.expires_never();  // an answer may take minutes (generation); writes have their own
  stream_.async_read_some(buffer_.prepare(kReadSize),
                          beast::bind_front_handler(&Session::on_watch, shared_from_this()));
}

void Session::on_watch(beast::error_code ec, size_t n) {
  watching_ = false;
  if (phase_ == Phase::kClosed) return;
  if (!ec) buffer_.commit(n);
  if (phase_ == Phase::kResponding) {
    // End of stream before the answer began is taken as a half-close (RFC 9112 §9.6): the client
    // sent all it will and may still read, so its answer goes out, then the connection closes.
    // (A client that closed for good looks the same until a write fails.) Once a stream is
    // under way, end of stream means the client left: its generation is cancelled at once.
    // Any other error means it is gone.
    if (ec == net::error::eof && !response_started_) {
      keep_alive_ = false;
      half_closed_hold_ = shared_from_this();  // no read is pending now to keep this alive
      return;
    }
    if (ec) return close_now();  // the client hung up before its answer was complete
    return do_watch();
  }
  // finish_response() cancelled this read to move on (or it had completed just before).
  if (ec && ec != net::error::operation_aborted) return close_now();
  resume();
}

// ---- Writing the answer -----------------------------------------------------------------------

bool Session::answerable(uint64_t exchange) const {
  return exchange == exchange_ && phase_ == Phase::kResponding && !response_complete_;
}

void Session::writer_send(uint64_t exchange, int status, const std::string& content_type,
                          std::string body, const HeaderList& headers) {
  if (!answerable(exchange) || response_started_) return;
  response_started_ = response_complete_ = true;
  sent_status_ = status;
  if (status >= 400) sent_error_ = error_message(content_type, body);
  http::response<http::string_body> res;
  fill_head(res, version_, status, content_type, headers, keep_alive_ && !state_->draining,
            access_ ? access_->request_id : std::string());
  keep_alive_ = res.keep_alive();
  // These statuses carry no body (prepare_payload() throws on one).
  const unsigned code = res.result_int();
  if (code < 200 || code == 204 || code == 304) body.clear();
  res.body() = std::move(body);
  res.prepare_payload();
  // Answered: drop the request, and its upload file, before the client can see the answer.
  request_ = HttpRequest{};
  queue_write(serialize(res.base()));
  if (!res.body().empty()) queue_write(std::move(res.body()));
}

void Session::writer_start_stream(uint64_t exchange, int status, const std::string& content_type,
                                  const HeaderList& headers) {
  if (!answerable(exchange) || response_started_) return;
  response_started_ = streaming_ = true;
  sent_status_ = status;
  http::response<http::empty_body> res;
  fill_head(res, version_, status, content_type, headers, keep_alive_ && !state_->draining,
            access_ ? access_->request_id : std::string());
  // HTTP/1.0 knows no chunks: the body then runs to the end of the connection.
  chunked_ = version_ >= 11;
  if (chunked_) {
    res.chunked(true);
  } else {
    res.keep_alive(false);
  }
  keep_alive_ = res.keep_alive();
  queue_write(serialize(res.base()));
}

void Session::writer_chunk(uint64_t exchange, std::string data) {
  if (!answerable(exchange) || !streaming_ || data.empty()) return;  // "0\r\n" would end it
  if (queued_bytes_ + data.size() > state_->options.max_send_buffer_bytes) {
    // The client reads slower than its stream is produced: drop it rather than buffer without
    // bound. close_now() reports the disconnect, which cancels the request in the engine.
    return close_now();
  }
  if (!chunked_) return queue_write(std::move(data));
  char size_line[24];
  const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  std::string frame;
  frame.reserve(static_cast<size_t>(len) + data.size() + 2);
  frame.append(size_line, static_cast<size_t>(len)).append(data).append("\r\n");
  queue_write(std::move(frame));
}

void Session::writer_end_stream(uint64_t exchange) {
  if (!answerable(exchange) || !streaming_) return;
  response_complete_ = true;
  request_ = HttpRequest{};
  if (chunked_) return queue_write("0\r\n\r\n");
  if (!writing_ && write_queue_.empty()) finish_response();
}

void Session::writer_abandoned(uint64_t exchange) {
  if (!answerable(exchange)) return;
  if (!response_started_) {
    return writer_send(exchange, 500, "application/json",
                       error_json("the request handler dropped the request without answering",
                                  status_code_name(StatusCode::kInternal), ""),
                       {});
  }
  close_now();  // a stream cut short: only a close tells the client it is truncated
}

void Session::respond_error(const Status& status, bool close, const HeaderList& headers) {
  if (!access_) {  // rejected before reading anything (the connection limit)
    access_ = std::make_shared<AccessRecord>();
    access_->request_id = new_request_id();
    sent_status_ = 0;
    sent_error_.clear();
  }
  phase_ = Phase::kResponding;
  ++exchange_;  // no writer has this number: the answer cannot be doubled
  response_started_ = response_complete_ = streaming_ = chunked_ = false;
  if (close) keep_alive_ = false;
  const StatusCode code = status.code();
  writer_send(exchange_, http_status(code), "application/json",
              error_json(status.message(), status_code_name(code), ""), headers);
}

void Session::queue_write(std::string bytes) {
  queued_bytes_ += bytes.size();
  write_queue_.push_back(std::move(bytes));
  do_write();
}

void Session::do_write() {
  if (writing_ || write_queue_.empty() || phase_ == Phase::kClosed) return;
  write_buffers_.clear();
  for (size_t i = 0; i < write_queue_.size() && i < kMaxWriteBatch; ++i) {
    write_buffers_.push_back(net::buffer(write_queue_[i]));
  }
  writing_items_ = write_buffers_.size();
  writing_ = true;
  // A client that stops reading for this long is treated as gone.
  stream_.expires_after(state_->options.write_timeout);
  net::async_write(stream_, write_buffers_,
                   beast::bind_front_handler(&Session::on_write, shared_from_this()));
}

void Session::on_write(beast::error_code ec, size_t /*n*/) {
  writing_ = false;
  if (phase_ == Phase::kClosed) return;
  if (ec) return close_now();
  for (size_t i = 0; i < writing_items_; ++i) {
    queued_bytes_ -= write_queue_.front().size();
    write_queue_.pop_front();
  }
  writing_items_ = 0;
  if (!write_queue_.empty()) return do_write();
  if (response_complete_ && phase_ == Phase::kResponding) finish_response();
}

void Session::finish_response() {
  // The write just completed holds a reference until this returns; the hold can go.
  half_closed_hold_.reset();
  log_exchange(/*complete=*/true);
  if (auto writer = writer_.lock()) writer->mark_finished();
  writer_.reset();
  request_ = HttpRequest{};
  phase_ = keep_alive_ && !state_->draining ? Phase::kBetweenRequests : Phase::kLingering;
  if (watching_) {
    // One read at a time: end the watch; on_watch() then resumes.
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  resume();
}

void Session::resume() {
  if (phase_ == Phase::kBetweenRequests) return do_await_request();
  if (phase_ != Phase::kLingering) return;
  // Closing at once with unread input would reset the connection, and the client could lose the
  // answer we just sent (a 413 before its body). Shut our side, discard input for a moment.
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(kLinger);
  do_linger();
}

void Session::do_linger() {
  stream_.async_read_some(net::buffer(linger_buf_),
                          beast::bind_front_handler(&Session::on_linger, shared_from_this()));
}

void Session::on_linger(beast::error_code ec, size_t /*n*/) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return close_now();  // the client closed, or kLinger passed
  do_linger();
}

void Session::close_now() {
  if (phase_ == Phase::kClosed) return;
  const bool answer_pending = phase_ == Phase::kResponding;
  if (answer_pending) log_exchange(/*complete=*/false);
  access_.reset();  // a request cut off while being read has no line
  phase_ = Phase::kClosed;
  // Pending operations complete with an error and release this session; buffers and parsers
  // they use stay alive until then.
  stream_.close();
  request_ = HttpRequest{};  // its upload file goes now, unless the handler kept the owner
  upload_.reset();
  std::shared_ptr<SessionWriter> writer = writer_.lock();
  writer_.reset();
  if (answer_pending && writer) writer->mark_disconnected();
  // Last: may destroy this session (the caller is a handler bound to a reference of its own, or
  // a post holding one).
  auto hold = std::move(half_closed_hold_);
}

void Session::log_exchange(bool complete) {
  if (!access_) return;
  access_->write(sent_status_, sent_error_, complete);
  access_.reset();
}

}  // namespace quilt::gateway

