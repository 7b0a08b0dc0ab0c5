// basic_socket (see socket.h), instantiated for the three socket types.
#include "io/socket.h"

#include "io/conn.h"
#include "io/detail/fd_state.h"
#include "io/detail/or_throw.h"
#include "io/detail/socket_util.h"
#include "io/listener.h"
#include "io/udp.h"

namespace spindle {

namespace {

// What the throwing calls of each type say they are.
template <class Socket>
struct call_names;
template <>
struct call_names<connection> {
  static constexpr const char* close = "spindle::connection::close";
  static constexpr const char* local_address = "spindle::connection::local_address";
};
template <>
struct call_names<listener> {
  static constexpr const char* close = "spindle::listener::close";
  static constexpr const char* local_address = "spindle::listener::local_address";
};
template <>
struct call_names<udp_socket> {
  static constexpr const char* close = "spindle::udp_socket::close";
  static constexpr const char* local_address = "spindle::udp_socket::local_address";
};

}  // namespace

template <class Socket>
basic_socket<Socket>::basic_socket() noexcept = default;

template <class Socket>
basic_socket<Socket>::basic_socket(std::unique_ptr<detail::fd_state> s) noexcept : s_(std::move(s)) {}

template <class Socket>
basic_socket<Socket>::basic_socket(basic_socket&& other) noexcept = default;

template <class Socket>
basic_socket<Socket>& basic_socket<Socket>::operator=(basic_socket&& other) noexcept {
  if (this != &other) {
    s_.reset();  // closes ours (fd_state's destructor) before taking theirs
    s_ = std::move(other.s_);
  }
  return *this;
}

template <class Socket>
basic_socket<Socket>::~basic_socket() = default;

template <class Socket>
bool basic_socket<Socket>::is_open() const noexcept {
  return s_ != nullptr && !s_->closing();
}

template <class Socket>
int basic_socket<Socket>::native_handle() const noexcept {
  return is_open() ? s_->fd() : -1;
}

template <class Socket>
void basic_socket<Socket>::close(std::error_code& ec) noexcept {
  ec.clear();
  if (s_) s_->close(ec);
}

template <class Socket>
void basic_socket<Socket>::close() {
  detail::or_throw(call_names<Socket>::close, [&](std::error_code& ec) { close(ec); });
}

template <class Socket>
address basic_socket<Socket>::local_address(std::error_code& ec) const noexcept {
  const detail::fd_state::op op(s_.get(), ec);
  if (!op) return {};
  return detail::socket_name(op.fd(), false, ec);
}

template <class Socket>
address basic_socket<Socket>::local_address() const {
  return detail::or_throw(call_names<Socket>::local_address,
                          [&](std::error_code& ec) { return local_address(ec); });
}

template <class Socket>
void basic_socket<Socket>::set_deadline(deadline d) noexcept {
  set_read_deadline(d);
  set_write_deadline(d);
}

template <class Socket>
void basic_socket<Socket>::set_read_deadline(deadline d) noexcept {
  if (s_) s_->set_deadline(detail::io_direction::read, d);
}

template <class Socket>
void basic_socket<Socket>::set_write_deadline(deadline d) noexcept {
  if (s_) s_->set_deadline(detail::io_direction::write, d);
}

template class basic_socket<connection>;
template class basic_socket<listener>;
template class basic_socket<udp_socket>;

}  // namespace spindle
