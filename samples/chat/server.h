// A chat server that IRC clients use (a subset of RFC 1459 / RFC 2812),
// written straight-line on Spindle: each connection is a reader fiber that
// reads a line, handles it and reads the next, and a writer fiber that
// drains the connection's send queue. Channels are maps under Spindle
// mutexes; nothing here is a callback.
//
//   spindle::run([] {
//     chat::server s(chat::options{.listen = "0.0.0.0:6667"});
//     spindle::go([&] { spindle::wait_signal({SIGINT, SIGTERM}); s.stop(); });
//     s.serve();  // returns once stopped and every client is gone
//   });
//
// What it does for a real network, each bounded by an option below: a
// registration timeout; a PING to a client idle for ping_interval and a
// disconnect if no line comes within ping_timeout; a bounded send queue
// per client (a client that does not read is disconnected with
// "ERROR :SendQ exceeded", and nobody else waits for it), which the
// server's own long replies (WHO, NAMES, LIST, ...) never overflow: they
// are queued as the client reads them; a flood limit per client (lines
// beyond a burst are delayed to a steady rate, and a client that keeps
// flooding is disconnected; a delayed client that closes, or a server
// that stops, does not wait the delay out); a limit on connections in
// total and per IP address.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "io/address.h"

namespace chat {

struct options {
  // Where to listen: "host:port" as spindle::listen takes it.
  std::string listen = "0.0.0.0:6667";
  // The name the server calls itself in prefixes and numerics.
  std::string server_name = "spindle.chat";
  // The network's name (in 001 and 005).
  std::string network = "Spindle";
  // A server password clients must send with PASS; empty for none.
  std::string password;
  // The message of the day, lines separated by '\n'; empty: 422.
  std::string motd = "Welcome. This server is a sample of the Spindle fiber library.";

  std::size_t max_clients = 20000;
  std::size_t max_clients_per_ip = 20000;
  // Bytes a client's send queue may hold before it is disconnected. The
  // server's own long replies are not charged to it as a flood would be:
  // they go into the queue a piece at a time (up to half of it), the next
  // once the client has read the last, and lines from others that come
  // meanwhile wait behind the reply, counted against this bound.
  std::size_t send_queue_bytes = 256 * 1024;
  // SO_SNDBUF for each client's socket: how much the kernel takes from
  // the send queue before the client reads it. 0: the system's default
  // (autotuned; megabytes over loopback). Tests make it small, so that a
  // client that does not read stops the server's writes soon.
  std::size_t socket_send_buffer = 0;

  std::chrono::milliseconds register_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds ping_interval{std::chrono::seconds(120)};
  std::chrono::milliseconds ping_timeout{std::chrono::seconds(60)};

  // Flood limit: a client may send flood_burst lines at once, then
  // flood_rate lines a second; lines beyond are delayed. One that has
  // flood_max_delayed lines delayed in a row (without catching up to its
  // rate in between) is disconnected with "ERROR :Excess Flood".
  // flood_rate 0 turns the limit off. A delay ends early, and the session
  // with it, when the client is disconnected (stop() included) or closes
  // its connection; the lines it left waiting are then dropped.
  double flood_rate = 2.0;
  std::size_t flood_burst = 20;
  std::size_t flood_max_delayed = 100;

  // How long a disconnecting client's last lines (its ERROR) may take to
  // write before the connection is closed regardless.
  std::chrono::milliseconds linger{std::chrono::seconds(2)};
};

// Counters, for tests and for the log at exit.
struct stats {
  std::size_t clients = 0;         // connected now
  std::size_t registered = 0;      // registered now
  std::size_t channels = 0;        // channels now
  std::uint64_t accepted = 0;      // connections accepted in all
  std::uint64_t refused = 0;       // turned away by a connection limit
  std::uint64_t sendq_exceeded = 0;
  std::uint64_t flood_kills = 0;
  std::uint64_t ping_timeouts = 0;
  std::uint64_t register_timeouts = 0;
};

namespace detail {
class server_impl;  // samples/chat/detail/server_impl.h
}  // namespace detail

class server {
 public:
  // Listens at once (throws spindle::io_error if it cannot). Inside a
  // Spindle runtime.
  explicit server(options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // serve() accepts and serves clients until stop(); then it tells every
  // client "ERROR :Server shutting down", closes their connections and
  // returns once all their fibers have ended. Call it once, from a fiber.
  void serve();

  // stop() makes serve() return (see there). Any fiber or thread; again
  // and before serve() is harmless.
  void stop();

  spindle::address local_address() const;
  chat::stats stats() const;

 private:
  std::unique_ptr<detail::server_impl> impl_;
};

}  // namespace chat
