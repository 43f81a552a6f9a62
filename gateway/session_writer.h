// The ResponseWriter a handler receives: thread-safe, posts everything to its session's strand.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gateway/http_types.h"

namespace quilt::gateway {

class Session;
struct ServerState;

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Holds its session weakly: a writer kept by the engine never keeps a closed connection alive,
// and its calls then do nothing. `exchange` numbers the request it answers, so a stale writer
// can never write into the next keep-alive request's response.
class SessionWriter final : public ResponseWriter {
 public:
  SessionWriter(std::weak_ptr<Session> session, std::shared_ptr<ServerState> state,
                uint64_t exchange);
  // A writer dropped without a complete answer makes the session answer 500 (nothing sent yet)
  // or cut the connection (a stream begun), rather than leave the client waiting forever.
  ~SessionWriter() override;

  // ResponseWriter; thread-safe.
  void send(int status, const std::string& content_type, std::string body,
            HeaderList headers = {}) override;
  void start_stream(int status, const std::string& content_type, HeaderList headers = {}) override;
  bool write_chunk(std::string data) override;
  void end_stream() override;
  void on_disconnect(std::function<void()> callback) override;
  bool connected() const override;

  // The session's side; called on its strand.
  void mark_disconnected();  // runs the on_disconnect callback, once
  void mark_finished();      // the response is on the wire: a later close is no disconnect

 private:
  enum class Phase { kIdle, kStreaming, kDone };  // what the handler has asked for so far

  // Posts `task(session)` to the strand; false when the session or the server is gone.
  // Called with mu_ held, so that calls from racing threads reach the strand in the order their
  // phase checks saw them.
  bool post_to_session(std::function<void(Session&)> task);
  bool post_plain(std::function<void()> task);  // to any I/O thread; needs no session

  // Constant after construction
  const std::weak_ptr<Session> session_;
  const std::shared_ptr<ServerState> state_;
  const uint64_t exchange_;

  // Protected by mu_
  mutable std::mutex mu_;
  Phase phase_ = Phase::kIdle;
  bool disconnected_ = false;
  bool finished_ = false;
  std::function<void()> on_disconnect_;
};

}  // namespace quilt::gateway
