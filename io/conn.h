// spindle::connection and spindle::dial(): stream sockets (TCP over IPv4
// and IPv6, Unix-domain) whose calls look blocking but park the fiber.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>

#include "io/address.h"
#include "io/error.h"
#include "io/socket.h"

namespace spindle {

class file;

// shutdown_type says which half of a connection shutdown() ends.
enum class shutdown_type { read, write, both };

// connection is one end of a stream: a TCP or Unix-domain socket from
// dial() or listener::accept(), or any stream descriptor adopted with
// connection::adopt() (a pipe, a socket a library made). Its calls read
// and write like blocking ones, but underneath the descriptor is
// non-blocking: a call tries the system call first and, only if it would
// block, parks the calling fiber on its worker's event loop until the
// descriptor is ready. Thousands of connections then need no more threads
// than workers.
//
//   spindle::connection c = spindle::dial("example.com:80", 5s);
//   c.write_all("GET / HTTP/1.0\r\n\r\n");
//   std::array<char, 4096> buf;
//   while (std::size_t n = c.read_some(buf)) fwrite(buf.data(), 1, n, stdout);
//
// One fiber may read while another writes; concurrent readers (writers)
// take turns. Every blocking call takes an optional deadline (a duration
// or a time_point) and the connection has its own read and write
// deadlines (set_deadline(), like Go's SetDeadline), which also apply to
// calls already waiting; the earlier of the two wins. close() from any
// fiber or thread wakes the calls parked on the connection with
// std::errc::operation_canceled before the descriptor is closed.
//
// Cancellation: every call that waits (read_some, write_all, ..., dial's
// connect, wait_readable/wait_writable below) is a cancellation point for
// a fiber that observes a stop token (spindle::jthread's, or
// fiber_options::stop_token): once stop is requested, a call that would
// wait fails with std::errc::operation_canceled (io_error, or the
// std::error_code& form, with the bytes moved before it), at once if stop
// was requested already. A call that can go through without waiting still
// does. The connection stays open and usable: a readiness that raced with
// the stop is kept for the next call. (The name lookup of dial() runs on
// the blocking pool: see spindle::blocking() for how a stop ends it.)
//
// Errors: each call throws io_error (a std::system_error that also says
// how many bytes moved before the failure), or, in its std::error_code&
// form, sets the code and returns the bytes moved. A deadline gives
// std::errc::timed_out; end of stream is a read of 0 bytes (read_exactly:
// io_errc::eof or io_errc::unexpected_eof). SIGPIPE is ignored: writing to
// a connection the peer closed fails with broken_pipe or
// connection_reset. Fibers and plain threads (which block) alike.
//
// is_open(), native_handle(), close() and local_address() are
// basic_socket's (io/socket.h).
class connection : public basic_socket<connection> {
 public:
  connection() noexcept = default;  // not open

  // adopt() takes ownership of `fd`, a connected stream socket or any
  // other descriptor that supports read(2)/write(2) and poll (a pipe, a
  // tty), and makes it non-blocking, so that its reads and writes park
  // instead of block.
  static connection adopt(int fd);
  static connection adopt(int fd, std::error_code& ec) noexcept;

  // read_some() reads what is available, at least one byte, waiting for
  // it if there is none; 0 means end of stream.
  std::size_t read_some(std::span<std::byte> buf, deadline d = {});
  std::size_t read_some(std::span<std::byte> buf, std::error_code& ec) noexcept;
  std::size_t read_some(std::span<std::byte> buf, deadline d, std::error_code& ec) noexcept;
  std::size_t read_some(std::span<char> buf, deadline d = {});
  std::size_t read_some(std::span<char> buf, std::error_code& ec) noexcept;
  std::size_t read_some(std::span<char> buf, deadline d, std::error_code& ec) noexcept;

  // read_exactly() reads until `buf` is full. At end of stream it fails
  // with io_errc::eof (nothing read) or io_errc::unexpected_eof.
  std::size_t read_exactly(std::span<std::byte> buf, deadline d = {});
  std::size_t read_exactly(std::span<std::byte> buf, std::error_code& ec) noexcept;
  std::size_t read_exactly(std::span<std::byte> buf, deadline d, std::error_code& ec) noexcept;
  std::size_t read_exactly(std::span<char> buf, deadline d = {});
  std::size_t read_exactly(std::span<char> buf, std::error_code& ec) noexcept;
  std::size_t read_exactly(std::span<char> buf, deadline d, std::error_code& ec) noexcept;

  // write_all() writes all of `data`, however many system calls that
  // takes; returns data's size.
  std::size_t write_all(std::span<const std::byte> data, deadline d = {});
  std::size_t write_all(std::span<const std::byte> data, std::error_code& ec) noexcept;
  std::size_t write_all(std::span<const std::byte> data, deadline d, std::error_code& ec) noexcept;
  std::size_t write_all(std::string_view data, deadline d = {});
  std::size_t write_all(std::string_view data, std::error_code& ec) noexcept;
  std::size_t write_all(std::string_view data, deadline d, std::error_code& ec) noexcept;
  // The vectored form (writev): all of every buffer, in order.
  std::size_t write_all(std::span<const iovec> bufs, deadline d = {});
  std::size_t write_all(std::span<const iovec> bufs, std::error_code& ec) noexcept;
  std::size_t write_all(std::span<const iovec> bufs, deadline d, std::error_code& ec) noexcept;

  // send_file() sends `count` bytes of `f` starting at `offset`, as
  // sendfile(2) does, and returns the bytes sent: fewer than `count` only
  // when the file ends first (0 at or past its end). The part of the range
  // the page cache holds goes straight from the cache to the socket on
  // this worker (sendfile(2); the socket's waits park the fiber as
  // write_all's do); only a part that would have to be read from the
  // device is read on the blocking pool first. Errors of the socket and of
  // the file alike are io_error (or `ec`), with the bytes sent before.
  // `f` must stay open for the call; the file offset is left alone.
  std::size_t send_file(const file& f, std::uint64_t offset, std::size_t count, deadline d = {});
  std::size_t send_file(const file& f, std::uint64_t offset, std::size_t count,
                        std::error_code& ec) noexcept;
  std::size_t send_file(const file& f, std::uint64_t offset, std::size_t count, deadline d,
                        std::error_code& ec) noexcept;

  // shutdown() ends one or both directions (shutdown(2)); the peer reads
  // end of stream after a write shutdown.
  void shutdown(shutdown_type how = shutdown_type::write);
  void shutdown(shutdown_type how, std::error_code& ec) noexcept;

  // remote_address() is the address of the peer (getpeername).
  address remote_address() const;
  address remote_address(std::error_code& ec) const noexcept;

  // TCP_NODELAY (on by default for dial() and accept(): request/response
  // protocols want it).
  void set_nodelay(bool on);
  void set_nodelay(bool on, std::error_code& ec) noexcept;
  // SO_KEEPALIVE; with `idle` > 0 also the idle time before the first
  // probe and the interval between probes (TCP_KEEPIDLE, TCP_KEEPINTVL).
  void set_keepalive(bool on, std::chrono::seconds idle = std::chrono::seconds(0));
  void set_keepalive(bool on, std::chrono::seconds idle, std::error_code& ec) noexcept;

  // The connection's own deadlines, for reads, writes, or both; a default
  // deadline{} removes them. Calls waiting now re-read them.
  using basic_socket::set_deadline;
  using basic_socket::set_read_deadline;
  using basic_socket::set_write_deadline;

 private:
  friend class listener;
  friend connection dial(const address& to, deadline d, std::error_code& ec) noexcept;
  explicit connection(std::unique_ptr<detail::fd_state> s) noexcept;
};

// dial() connects a stream socket: `where` is "host:port" (a name is
// resolved through spindle::resolve, and each address is tried in turn),
// "[v6]:port", "unix:/path", "/path" or "@abstract". The deadline covers
// the name lookup and all attempts. Fails with the last attempt's error
// (connection_refused, timed_out, ...).
connection dial(std::string_view where, deadline d = {});
connection dial(std::string_view where, std::error_code& ec) noexcept;
connection dial(std::string_view where, deadline d, std::error_code& ec) noexcept;
connection dial(const address& to, deadline d = {});
connection dial(const address& to, deadline d, std::error_code& ec) noexcept;

// wait_readable() and wait_writable() park the calling fiber (block a
// plain thread) until `fd`, a descriptor the caller keeps managing (a
// library's socket), is ready; for code that does its own non-blocking
// I/O. Ready as poll(2) means it: a hang-up or an error counts, and a
// regular file always is. Each call registers the descriptor anew (it
// duplicates it, and the duplicate is what it waits on): for a descriptor
// used often, adopt it instead.
//
// Errors: bad_file_descriptor when `fd` is negative or not an open
// descriptor; timed_out at the deadline; what duplicating or registering
// it failed with otherwise (too_many_files_open, say). Closing `fd` while
// a call waits on it does not end the wait: it goes on, on the file `fd`
// referred to (which stays open until the wait ends), until that file is
// ready or the deadline passes. On a fiber that observes a stop token, a
// stop request ends the wait with operation_canceled (see "Cancellation"
// at connection). Fibers and plain threads alike.
void wait_readable(int fd, deadline d = {});
void wait_readable(int fd, deadline d, std::error_code& ec) noexcept;
void wait_writable(int fd, deadline d = {});
void wait_writable(int fd, deadline d, std::error_code& ec) noexcept;

}  // namespace spindle
