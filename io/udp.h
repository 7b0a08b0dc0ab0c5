// spindle::udp_socket: datagrams from fibers.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>

#include "io/address.h"
#include "io/error.h"
#include "io/socket.h"

namespace spindle {

// udp_socket sends and receives datagrams. recv_from() parks the calling
// fiber until a datagram arrives; send_to() parks only while the socket's
// send buffer is full. Deadlines, close() under a parked call,
// cancellation by a stop request, and errors work as for connection
// (io/conn.h).
//
//   spindle::udp_socket s = spindle::udp_socket::bind("127.0.0.1:0");
//   spindle::address from;
//   std::array<std::byte, 1500> buf;
//   std::size_t n = s.recv_from(buf, from, 5s);
//   s.send_to(std::span(buf).first(n), from);  // echo it back
//
// is_open(), native_handle(), close() and local_address() are
// basic_socket's (io/socket.h).
class udp_socket : public basic_socket<udp_socket> {
 public:
  udp_socket() noexcept = default;  // not open

  // bind() opens a socket bound to `where` ("host:port", port 0 for any).
  static udp_socket bind(std::string_view where);
  static udp_socket bind(std::string_view where, std::error_code& ec) noexcept;
  static udp_socket bind(const address& at);
  static udp_socket bind(const address& at, std::error_code& ec) noexcept;
  // open() opens an unbound socket of `family` (AF_INET, AF_INET6) for
  // sending; the kernel picks its port at the first send.
  static udp_socket open(int family = AF_INET);
  static udp_socket open(int family, std::error_code& ec) noexcept;

  // send_to() sends one datagram; returns its size.
  std::size_t send_to(std::span<const std::byte> data, const address& to, deadline d = {});
  std::size_t send_to(std::span<const std::byte> data, const address& to, deadline d,
                      std::error_code& ec) noexcept;
  std::size_t send_to(std::string_view data, const address& to, deadline d = {});
  std::size_t send_to(std::string_view data, const address& to, deadline d,
                      std::error_code& ec) noexcept;
  // recv_from() receives one datagram into `buf` (the excess of a longer
  // one is dropped, as with recvfrom(2)) and its sender into `from`.
  std::size_t recv_from(std::span<std::byte> buf, address& from, deadline d = {});
  std::size_t recv_from(std::span<std::byte> buf, address& from, deadline d, std::error_code& ec) noexcept;

  // The socket's own deadlines, as connection's.
  using basic_socket::set_deadline;
  using basic_socket::set_read_deadline;
  using basic_socket::set_write_deadline;

 private:
  explicit udp_socket(std::unique_ptr<detail::fd_state> s) noexcept;
};

}  // namespace spindle
