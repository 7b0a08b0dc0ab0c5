// spindle::listener and spindle::listen(): accepting stream connections
// (TCP over IPv4 and IPv6, Unix-domain) from fibers.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string_view>
#include <system_error>

#include "io/address.h"
#include "io/conn.h"
#include "io/error.h"
#include "io/socket.h"

namespace spindle {

struct listen_options {
  int backlog = SOMAXCONN;     // listen(2)'s backlog (the kernel caps it)
  bool reuse_address = true;   // SO_REUSEADDR: restart without waiting out TIME_WAIT
  bool reuse_port = false;     // SO_REUSEPORT: several listeners share the port
};

// listener is a listening stream socket. accept() parks the calling fiber
// until a connection arrives, so a server is a loop:
//
//   spindle::listener l = spindle::listen(":7000");
//   for (;;) {
//     spindle::connection c = l.accept();
//     spindle::go([c = std::move(c)]() mutable { serve(c); });
//   }
//
// When the process runs out of descriptors (EMFILE, ENFILE) or kernel
// memory, accept() does not spin: it backs off (sleeping 1 ms, doubling up
// to 100 ms between attempts, within its deadline) and resumes accepting
// once descriptors are free again. Connections it returns have TCP_NODELAY
// set. close() from any fiber or thread wakes a parked accept() with
// std::errc::operation_canceled; so does a stop request on the token of
// a cancellable fiber parked in accept() (or backing off in it), as for
// connection's calls (io/conn.h, "Cancellation"). A Unix-domain listener
// removes its
// socket file when closed. Errors as for connection (io_error, or the
// std::error_code& forms). is_open(), native_handle(), close() and
// local_address() are basic_socket's (io/socket.h).
class listener : public basic_socket<listener> {
 public:
  listener() noexcept = default;  // not listening

  connection accept(deadline d = {});
  connection accept(std::error_code& ec) noexcept;
  connection accept(deadline d, std::error_code& ec) noexcept;

 private:
  friend listener listen(const address& at, const listen_options& opts, std::error_code& ec) noexcept;
  listener(std::unique_ptr<detail::fd_state> s, bool tcp) noexcept;

  bool tcp_ = false;
};

// listen() opens a listening socket at `where`: "host:port" (":port" or
// "0.0.0.0:port" for every IPv4 interface, "[::]:port" for IPv6 ones,
// names resolved through spindle::resolve), "unix:/path", "/path" or
// "@abstract". Port 0 picks a free port (see local_address()).
listener listen(std::string_view where, const listen_options& opts = {});
listener listen(std::string_view where, std::error_code& ec) noexcept;
listener listen(std::string_view where, const listen_options& opts, std::error_code& ec) noexcept;
listener listen(const address& at, const listen_options& opts = {});
listener listen(const address& at, const listen_options& opts, std::error_code& ec) noexcept;

}  // namespace spindle
