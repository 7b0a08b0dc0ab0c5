// spindle::basic_socket: what every socket type (connection, listener,
// udp_socket) has.
#pragma once

#include <memory>
#include <system_error>

#include "io/address.h"
#include "io/error.h"

namespace spindle {

namespace detail {
class fd_state;
}

// basic_socket<Socket> is the base of the socket types: it owns the
// descriptor, through a detail::fd_state that makes closing it under
// parked fibers safe, and gives each type the calls they all share. It is
// not used on its own (its constructors are protected); `Socket` is the
// type built on it (connection, listener or udp_socket), which names the
// calls in error messages.
//
// A socket is move-only; assigning over one closes it first, and the
// destructor closes it, ignoring errors. Fibers and plain threads alike.
template <class Socket>
class basic_socket {
 public:
  // is_open() says whether the socket is open: not default-constructed,
  // moved from, closed or being closed.
  bool is_open() const noexcept;
  // native_handle() is the descriptor (-1 if not open), still owned by the
  // socket.
  int native_handle() const noexcept;

  // close() wakes every call parked on the socket (they fail with
  // std::errc::operation_canceled), waits for them to leave, then closes
  // the descriptor. Idempotent. Calls made after it fail with
  // bad_file_descriptor (and operation_canceled while it is under way).
  // Any fiber or thread.
  void close();
  void close(std::error_code& ec) noexcept;

  // local_address() is the address the socket is bound to (getsockname).
  address local_address() const;
  address local_address(std::error_code& ec) const noexcept;

 protected:
  // Out of line, as every member that may destroy the fd_state: it is
  // complete only in io/.
  basic_socket() noexcept;
  explicit basic_socket(std::unique_ptr<detail::fd_state> s) noexcept;
  basic_socket(basic_socket&& other) noexcept;
  basic_socket& operator=(basic_socket&& other) noexcept;
  ~basic_socket();

  // The state every call starts from (an op or an io_lock on it); null
  // when not open.
  detail::fd_state* state() const noexcept { return s_.get(); }

  // The socket's own deadlines, for reads, writes or both (Go's
  // SetDeadline): a default deadline{} removes them, and calls waiting now
  // re-read them. connection and udp_socket make these public.
  void set_deadline(deadline d) noexcept;
  void set_read_deadline(deadline d) noexcept;
  void set_write_deadline(deadline d) noexcept;

 private:
  std::unique_ptr<detail::fd_state> s_;
};

}  // namespace spindle
