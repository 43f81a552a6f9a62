// Listener: the accept loop of the Beast server.
#include "gateway/http_listener.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <cstdio>

#include "common/log.h"
#include "gateway/http_session.h"

namespace quilt::gateway {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

Listener::Listener(net::io_context& ioc, std::shared_ptr<ServerState> state)
    : ioc_(ioc),
      state_(std::move(state)),
      acceptor_(net::make_strand(ioc)),
      retry_timer_(acceptor_.get_executor()) {}

Status Listener::open(const tcp::endpoint& endpoint) {
  const std::string where = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  beast::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return Status::IOError("open socket for " + where + ": " + ec.message());
  // A restarted server must not wait out the old one's TIME_WAIT connections.
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return Status::IOError("set SO_REUSEADDR on " + where + ": " + ec.message());
  acceptor_.bind(endpoint, ec);
  if (ec) return Status::IOError("bind " + where + ": " + ec.message());
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("listen on " + where + ": " + ec.message());
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return Status::IOError("local address of " + where + ": " + ec.message());
  return Status::OK();
}

void Listener::run() {
  net::dispatch(acceptor_.get_executor(),
                beast::bind_front_handler(&Listener::do_accept, shared_from_this()));
}

void Listener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    self->acceptor_.close(ignored);
    self->retry_timer_.cancel();
  });
}

void Listener::do_accept() {
  if (!acceptor_.is_open()) return;
  acceptor_.async_accept(net::make_strand(ioc_),
                         beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
}

void Listener::on_accept(beast::error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;  // stop()
  if (ec) {
    // Out of file descriptors, most likely: back off instead of spinning on the error.
    log::error("accept failed", {{"error", ec.message()}});
    retry_timer_.expires_after(std::chrono::milliseconds(50));
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
      if (!wait_ec) self->do_accept();
    });
    return;
  }
  beast::error_code ignored;
  // Stream chunks are small and latency-bound: no Nagle delay.
  socket.set_option(tcp::no_delay(true), ignored);
  // While draining, new connections are still served, but only the health routes answer (the
  // session sees draining and answers everything else 503).
  if (state_->active.load() >= state_->options.max_connections) {
    std::make_shared<Session>(std::move(socket), state_, /*counted=*/false)->reject_overloaded();
  } else {
    std::make_shared<Session>(std::move(socket), state_, /*counted=*/true)->start();
  }
  do_accept();
}

}  // namespace quilt::gateway
