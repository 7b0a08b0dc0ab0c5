// http_server: the HTTP/1.1 server of samples/http/server.h as a program.
//
//   http_server [--port=8080] [--bind=0.0.0.0] [--workers=N] [--root=DIR] [limits]
//   http_server --help     (the flags below)
//   curl http://localhost:8080/     -> Hello, World!
//
// SIGINT or SIGTERM: it stops accepting, answers the requests in
// progress, closes idle connections and exits 0. A bad flag, a --root
// that is not a directory, or an address it cannot listen on, is said on
// stderr and exits 2.
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "samples/command_line.h"
#include "samples/http/server.h"
#include "samples/serve.h"

ABSL_FLAG(int, port, 8080, "TCP port to listen on (0: any free port)");
ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on (\"::\" for IPv6)");
ABSL_FLAG(unsigned, workers, 0, "worker threads (0: one per hardware thread)");
ABSL_FLAG(std::string, root, "", "directory of static files (empty: none)");
ABSL_FLAG(std::size_t, max_uri_bytes, 8 * 1024, "longest request line (longer: 414)");
ABSL_FLAG(std::size_t, max_header_bytes, 32 * 1024, "longest request header (longer: 431)");
ABSL_FLAG(std::size_t, max_body_bytes, 1024 * 1024, "longest request body (longer: 413)");
ABSL_FLAG(std::size_t, max_connections, 10000, "connections at most (beyond: closed at once)");
ABSL_FLAG(int, header_timeout, 60, "seconds a request's whole header may take to arrive");
ABSL_FLAG(int, keepalive_timeout, 75, "seconds an idle connection waits for its next request");
ABSL_FLAG(int, body_timeout, 60, "seconds each read of a request body may wait");
ABSL_FLAG(int, send_timeout, 60, "seconds each write of a response may wait");
ABSL_FLAG(std::size_t, open_file_cache, 1000, "files kept open for serving (0: none; nginx's open_file_cache)");
ABSL_FLAG(int, open_file_cache_valid, 10, "seconds a kept file is served before it is looked up again");

namespace {

// Listens and serves until SIGINT or SIGTERM; the exit status. On a fiber.
int serve(const httpd::options& o) {
  std::unique_ptr<httpd::server> s;
  try {
    s = std::make_unique<httpd::server>(o);
  } catch (const std::filesystem::filesystem_error& e) {
    samples::error("cannot serve --root=" + o.root.string() + ": " + e.code().message());
    return samples::exit_usage;
  } catch (const std::exception& e) {
    samples::error("cannot listen on " + o.listen + ": " + e.what());
    return samples::exit_usage;
  }
  samples::serve_until_signal("http_server", *s);
  const httpd::stats st = s->stats();
  std::printf("http_server: stopped; %llu connections served, %llu refused, %llu responses\n",
              static_cast<unsigned long long>(st.accepted),
              static_cast<unsigned long long>(st.refused),
              static_cast<unsigned long long>(st.requests));
  return 0;
}

// A flag of seconds, which must be positive.
std::chrono::milliseconds seconds_flag(const absl::Flag<int>& flag, const char* name) {
  const int s = absl::GetFlag(flag);
  if (s <= 0) samples::usage_error(std::string("--") + name + " must be at least 1");
  return std::chrono::seconds(s);
}

}  // namespace

int main(int argc, char** argv) {
  samples::parse_command_line(
      argc, argv,
      "An HTTP/1.1 server on Spindle fibers: / says hello, /echo returns the request body,\n"
      "other paths are files under --root.\n"
      "Usage: http_server [--port=8080] [--bind=0.0.0.0] [--workers=N] [--root=DIR] [flags below]",
      __FILE__);

  httpd::options o;
  o.listen = samples::listen_address(absl::GetFlag(FLAGS_bind), absl::GetFlag(FLAGS_port));
  o.root = absl::GetFlag(FLAGS_root);
  o.max_uri_bytes = absl::GetFlag(FLAGS_max_uri_bytes);
  o.max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  o.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  o.max_connections = absl::GetFlag(FLAGS_max_connections);
  o.header_timeout = seconds_flag(FLAGS_header_timeout, "header_timeout");
  o.keepalive_timeout = seconds_flag(FLAGS_keepalive_timeout, "keepalive_timeout");
  o.body_timeout = seconds_flag(FLAGS_body_timeout, "body_timeout");
  o.send_timeout = seconds_flag(FLAGS_send_timeout, "send_timeout");
  o.open_file_cache = absl::GetFlag(FLAGS_open_file_cache);
  o.open_file_cache_valid = seconds_flag(FLAGS_open_file_cache_valid, "open_file_cache_valid");

  return samples::run_program(absl::GetFlag(FLAGS_workers), [&] { return serve(o); });
}
