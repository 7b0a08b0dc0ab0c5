// A key-value server that speaks Redis's protocol (RESP2), so that
// redis-cli, redis-benchmark and Redis client libraries use it as they
// would a Redis server: strings, lists, expiry, blocking pops (docs/kv.md
// lists the commands). Written straight-line on Spindle: a fiber per
// connection reads a batch of commands, runs them and writes their
// replies at once; BLPOP parks that fiber on the keys it waits for. The
// key space is kv::store (store.h), in shards under Spindle mutexes.
//
//   spindle::run([] {
//     kv::server s(kv::options{.listen = "0.0.0.0:6380"});
//     spindle::go([&] { spindle::wait_signal({SIGINT, SIGTERM}); s.stop(); });
//     s.serve();  // returns once stopped and every client is gone
//   });
//
// Limits, as Redis has them: a bulk argument, the arguments of one
// command and an inline command each have a maximum size (a client past
// it is answered with a protocol error and disconnected); a connection
// beyond max_clients is answered "-ERR max number of clients reached"
// and closed. A client that does not read its replies is disconnected
// once a write of them has waited write_timeout: the server stops
// reading a client's commands while it writes their replies, so what is
// pending for a client is bounded (about 64 KiB beyond one reply).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "io/address.h"
#include "samples/kv/resp.h"
#include "samples/kv/store.h"

namespace kv {

struct options {
  // Where to listen: "host:port" as spindle::listen takes it. 6380, next
  // to Redis's 6379, so as not to clash with a Redis on the same machine.
  std::string listen = "0.0.0.0:6380";
  std::size_t max_clients = 10000;  // Redis's maxclients default
  protocol_limits limits;
  // How the key space's shards are shared between clients (store.h).
  kv::sharding sharding = kv::sharding::mutex;
  // How long a write of replies may wait for the client to read before
  // the client is disconnected.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  // How often keys whose time to live has ended are removed, when no
  // client asks for them (Redis's hz, 10 a second).
  std::chrono::milliseconds expire_period{100};
};

// Counters, for INFO, tests and the log at exit.
struct stats {
  std::size_t clients = 0;          // connected now
  std::size_t blocked = 0;          // parked in BLPOP or BRPOP now
  std::uint64_t accepted = 0;       // connections accepted in all
  std::uint64_t refused = 0;        // turned away by max_clients
  std::uint64_t protocol_errors = 0;
  std::uint64_t write_timeouts = 0;  // clients dropped for not reading
  std::uint64_t commands = 0;
};

namespace detail {
class server_impl;  // samples/kv/detail/server_impl.h
}  // namespace detail

class server {
 public:
  // Listens at once (throws spindle::io_error if it cannot). Inside a
  // Spindle runtime.
  explicit server(options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // serve() accepts and serves clients until stop(); then it closes every
  // connection (a client blocked in BLPOP included) and returns once
  // their fibers have ended. Call it once, from a fiber.
  void serve();
  // stop() makes serve() return. Any fiber or thread; again, or before
  // serve(), is harmless.
  void stop();

  spindle::address local_address() const;
  kv::stats stats() const;

 private:
  std::unique_ptr<detail::server_impl> impl_;
};

}  // namespace kv
