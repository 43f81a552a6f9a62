// What the server, its listener, its sessions and their response writers share (private).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "gateway/http_server.h"

namespace boost::asio {
class io_context;
}

namespace quilt::gateway {

class Session;

struct ServerState {
  ServerState(ServerOptions opts, const Router& r) : options(std::move(opts)), router(r) {}

  // Constant after construction
  const ServerOptions options;
  const Router& router;  // read only by sessions, which all end before the server does

  std::atomic<int> active{0};         // counted sessions alive (not the 503 rejects)
  std::atomic<bool> draining{false};  // stop() began: no keep-alive, no new requests

  // Writers may outlive the io_context (the engine thread holds them); they post to a session's
  // strand only under a shared lock with gate_open, and stop() closes the gate exclusively after
  // the threads joined and before the io_context is destroyed.
  std::shared_mutex gate_mu;
  bool gate_open = true;  // GUARDED_BY(gate_mu)
  // Set by start() before the first session; used only under an open gate. (Writers hold no
  // executor of their own: a strand executor outliving its io_context crashes when released.)
  boost::asio::io_context* io = nullptr;

  // Protected by mu
  std::mutex mu;
  std::condition_variable session_ended;  // signalled by each counted session's destructor
  std::unordered_map<const Session*, std::weak_ptr<Session>> sessions;

  std::vector<std::shared_ptr<Session>> live_sessions() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<Session>> out;
    for (auto& [key, weak] : sessions) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }
};

}  // namespace quilt::gateway
