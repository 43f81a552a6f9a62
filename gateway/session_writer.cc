// SessionWriter: the thread-safe ResponseWriter bound to one request of one session.
#include "gateway/session_writer.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "gateway/http_session.h"
#include "gateway/server_state.h"

namespace quilt::gateway {

namespace net = boost::asio;

SessionWriter::SessionWriter(std::weak_ptr<Session> session, std::shared_ptr<ServerState> state,
                             uint64_t exchange)
    : session_(std::move(session)), state_(std::move(state)), exchange_(exchange) {}

SessionWriter::~SessionWriter() {
  std::lock_guard lock(mu_);
  if (phase_ == Phase::kDone || finished_ || disconnected_) return;
  const uint64_t exchange = exchange_;
  post_to_session([exchange](Session& s) { s.writer_abandoned(exchange); });
}

bool SessionWriter::post_to_session(std::function<void(Session&)> task) {
  std::shared_lock gate(state_->gate_mu);
  if (!state_->gate_open) return false;
  std::shared_ptr<Session> session = session_.lock();
  if (!session) return false;
  session->run_on_strand(std::move(task));
  return true;
}

bool SessionWriter::post_plain(std::function<void()> task) {
  std::shared_lock gate(state_->gate_mu);
  if (!state_->gate_open || state_->io == nullptr) return false;
  net::post(*state_->io, std::move(task));
  return true;
}

void SessionWriter::send(int status, const std::string& content_type, std::string body,
                         HeaderList headers) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kIdle || disconnected_) return;
  phase_ = Phase::kDone;
  post_to_session([exchange = exchange_, status, content_type, body = std::move(body),
                   headers = std::move(headers)](Session& s) mutable {
    s.writer_send(exchange, status, content_type, std::move(body), headers);
  });
}

void SessionWriter::start_stream(int status, const std::string& content_type, HeaderList headers) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kIdle || disconnected_) return;
  phase_ = Phase::kStreaming;
  post_to_session(
      [exchange = exchange_, status, content_type, headers = std::move(headers)](Session& s) {
        s.writer_start_stream(exchange, status, content_type, headers);
      });
}

bool SessionWriter::write_chunk(std::string data) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kStreaming || disconnected_) return false;
  return post_to_session([exchange = exchange_, data = std::move(data)](Session& s) mutable {
    s.writer_chunk(exchange, std::move(data));
  });
}

void SessionWriter::end_stream() {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::kStreaming || disconnected_) return;
  phase_ = Phase::kDone;
  post_to_session([exchange = exchange_](Session& s) { s.writer_end_stream(exchange); });
}

void SessionWriter::on_disconnect(std::function<void()> callback) {
  if (!callback) return;
  {
    std::lock_guard lock(mu_);
    if (finished_) return;  // answered in full: this client can no longer leave "too early"
    if (!disconnected_) {
      on_disconnect_ = std::move(callback);
      return;
    }
    // Already gone: run it on an I/O thread, like a live notification would be.
    if (post_plain(callback)) return;
  }
  // The server itself is gone, so no thread of it will run the callback; the caller's thread
  // must, or whoever waits for it (the engine cancelling a request) would wait forever.
  callback();
}

bool SessionWriter::connected() const {
  std::lock_guard lock(mu_);
  return !disconnected_ && !session_.expired();
}

void SessionWriter::mark_disconnected() {
  std::function<void()> callback;
  {
    std::lock_guard lock(mu_);
    if (disconnected_ || finished_) return;
    disconnected_ = true;
    callback = std::move(on_disconnect_);
    on_disconnect_ = nullptr;
  }
  // Outside the lock: the callback may well call back into this writer.
  if (callback) callback();
}

void SessionWriter::mark_finished() {
  std::function<void()> drop;  // destroy the callback's captures outside the lock
  std::lock_guard lock(mu_);
  finished_ = true;
  drop = std::move(on_disconnect_);
  on_disconnect_ = nullptr;
}

}  // namespace quilt::gateway
