// HttpServer: the io_context, its threads, the listener, and a draining stop.
#include "gateway/http_server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdio>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

#include "gateway/http_listener.h"
#include "common/log.h"
#include "gateway/http_session.h"
#include "gateway/server_state.h"

namespace quilt::gateway {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// After the drain the remaining sessions are closed; this bounds the wait for them to unwind
// (a handler blocking an I/O thread can hold one up, and join() would wait for it anyway).
constexpr auto kCloseGrace = std::chrono::seconds(1);

}  // namespace

struct HttpServer::Impl {
  Impl(ServerOptions options, const Router& router)
      : state(std::make_shared<ServerState>(std::move(options), router)) {}

  // Waits until no counted session is left, or `deadline`.
  void wait_sessions(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(state->mu);
    state->session_ended.wait_until(lock, deadline, [&] { return state->active.load() == 0; });
  }

  const std::shared_ptr<ServerState> state;

  // Protected by mu (start/stop from the owner's thread, but possibly racing the destructor)
  std::mutex mu;
  bool started = false;
  bool stopped = false;
  std::unique_ptr<net::io_context> ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::shared_ptr<Listener> listener;
  std::vector<std::thread> threads;
  uint16_t port = 0;
};

HttpServer::HttpServer(ServerOptions options, const Router& router)
    : impl_(std::make_unique<Impl>(std::move(options), router)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return Status::Internal("HttpServer::start called twice");
  const ServerOptions& o = impl_->state->options;
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;

  auto ioc = std::make_unique<net::io_context>(threads);
  boost::system::error_code ec;
  tcp::resolver resolver(*ioc);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port), ec);
  if (ec || endpoints.empty()) {
    return Status::InvalidArgument("cannot resolve host '" + o.host + "': " + ec.message());
  }
  auto listener = std::make_shared<Listener>(*ioc, impl_->state);
  QUILT_RETURN_IF_ERROR(listener->open(endpoints.begin()->endpoint()));

  impl_->started = true;
  impl_->port = listener->port();
  impl_->state->io = ioc.get();
  impl_->work.emplace(net::make_work_guard(*ioc));
  listener->run();
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([io = ioc.get()] {
      for (;;) {
        try {
          io->run();
          return;
        } catch (const std::exception& e) {
          // Handlers catch their own; this is a bug, but one connection's, not the server's.
          log::error("uncaught exception on an I/O thread", {{"error", e.what()}});
        }
      }
    });
  }
  impl_->listener = std::move(listener);
  impl_->ioc = std::move(ioc);
  return Status::OK();
}

uint16_t HttpServer::port() const {
  std::lock_guard lock(impl_->mu);
  return impl_->port;
}

int HttpServer::active_connections() const { return impl_->state->active.load(); }

void HttpServer::stop(std::chrono::milliseconds drain) {
  std::lock_guard lock(impl_->mu);
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  ServerState& state = *impl_->state;
  const auto deadline = std::chrono::steady_clock::now() + drain;

  // 1. No new requests on the open connections; idle ones close now. New connections are still
  // accepted, for /readyz to answer 503 (a refused connection reads as a crash to a prober).
  state.draining = true;
  for (const auto& session : state.live_sessions()) session->drain();

  // 2. Requests in flight finish (their answers say Connection: close) until the deadline.
  impl_->wait_sessions(deadline);

  // 3. No new connections; whatever is left is closed; pending writers report a disconnect to
  // their handlers.
  impl_->listener->stop();
  for (const auto& session : state.live_sessions()) session->close();
  impl_->wait_sessions(std::chrono::steady_clock::now() + kCloseGrace);

  impl_->work.reset();
  impl_->ioc->stop();
  for (auto& thread : impl_->threads) thread.join();
  impl_->threads.clear();

  // 4. Writers still held elsewhere (the engine) must not post into a destroyed io_context.
  {
    std::unique_lock gate(state.gate_mu);
    state.gate_open = false;
  }
  impl_->listener.reset();
  impl_->ioc.reset();  // destroys what was left queued, and with it the last sessions
}

}  // namespace quilt::gateway
