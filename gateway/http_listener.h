// Accepts connections and hands each to a Session (private).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <cstdint>
#include <memory>

#include "common/status.h"
#include "gateway/server_state.h"

namespace quilt::gateway {

// Accepts on its own strand; each accepted socket gets a strand of its own (one per session).
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(boost::asio::io_context& ioc, std::shared_ptr<ServerState> state);

  Status open(const boost::asio::ip::tcp::endpoint& endpoint);  // bind + listen
  uint16_t port() const { return port_; }
  void run();   // starts accepting
  void stop();  // thread-safe: closes the acceptor; connections already accepted go on

 private:
  void do_accept();
  void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);

  // Constant after construction
  boost::asio::io_context& ioc_;
  const std::shared_ptr<ServerState> state_;

  // On the listener's strand (port_ is set by open(), before run())
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  uint16_t port_ = 0;
};

}  // namespace quilt::gateway
