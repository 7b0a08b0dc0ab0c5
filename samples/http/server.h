// A small HTTP/1.1 server written straight-line on Spindle: one fiber per
// connection reads a request, answers it and reads the next; nothing here
// is a callback. Requests are parsed by Boost.Beast's request_parser, fed
// from the connection's own buffer (no Asio). docs/http.md describes what
// it does, its limits and status codes, and where it differs from nginx.
//
//   spindle::run([] {
//     httpd::server s(httpd::options{.listen = "0.0.0.0:8080", .root = "/srv/www"});
//     spindle::go([&] { spindle::wait_signal({SIGINT, SIGTERM}); s.stop(); });
//     s.serve();  // returns once stopped and every connection is gone
//   });
//
// Routes: "/" answers "Hello, World!\n" (GET, HEAD), "/echo" answers the
// request's body (any method), and any other path is a file under `root`
// (GET, HEAD), or 404 without a root.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "io/address.h"

namespace httpd {

struct options {
  // Where to listen: "host:port" as spindle::listen takes it.
  std::string listen = "0.0.0.0:8080";
  // The directory of static files; empty: none (only "/" and "/echo").
  std::filesystem::path root;

  // Limits, nginx's defaults where nginx has one. A request line longer
  // than max_uri_bytes gets 414; a header (request line included) longer
  // than max_header_bytes 431; a body longer than max_body_bytes 413
  // (nginx: client_max_body_size 1m).
  std::size_t max_uri_bytes = 8 * 1024;
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;
  // Connections at most; one beyond is accepted and closed at once.
  std::size_t max_connections = 10000;

  // The whole header must arrive within header_timeout (from the
  // connection's accept for its first request, from the first byte for
  // later ones), however slowly bytes keep coming (nginx:
  // client_header_timeout 60s). A connection may wait for its next
  // request keepalive_timeout (nginx: keepalive_timeout 75s). Each read of
  // a body may wait body_timeout, each write send_timeout (nginx:
  // client_body_timeout, send_timeout 60s). After an error response the
  // server reads and drops what the client still sends for up to
  // linger_timeout before it closes (nginx: lingering_time 30s), so that
  // the client reads the response instead of a reset.
  std::chrono::milliseconds header_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds keepalive_timeout{std::chrono::seconds(75)};
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds send_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds linger_timeout{std::chrono::seconds(5)};

  // The open-file cache (nginx's open_file_cache): up to open_file_cache
  // files stay open, with their status, and are served without looking
  // them up again for open_file_cache_valid; a change to a file within
  // that time is not seen (samples/http/file_cache.h). 0: no cache.
  std::size_t open_file_cache = 1000;
  std::chrono::milliseconds open_file_cache_valid{std::chrono::seconds(10)};
};

// Counters, for tests and for the log at exit.
struct stats {
  std::size_t connections = 0;  // open now
  std::uint64_t accepted = 0;   // connections served, in all
  std::uint64_t refused = 0;    // closed at once: over max_connections
  std::uint64_t requests = 0;   // responses sent (100 Continue not counted)
  std::size_t cached_files = 0;  // in the open-file cache
};

namespace detail {
class server_impl;  // samples/http/server.cpp
}  // namespace detail

class server {
 public:
  // Listens at once (throws spindle::io_error if it cannot, and
  // std::filesystem::filesystem_error for a root that is not a directory).
  // Inside a Spindle runtime.
  explicit server(options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // serve() accepts and serves connections until stop(), then waits for
  // them to end: a request in progress gets its response (with
  // "Connection: close"), a connection waiting for its next request is
  // closed. Call it once, from a fiber.
  void serve();

  // stop() makes serve() return (see there). Any fiber or thread; again
  // and before serve() is harmless.
  void stop();

  spindle::address local_address() const;
  httpd::stats stats() const;

 private:
  std::unique_ptr<detail::server_impl> impl_;
};

}  // namespace httpd
