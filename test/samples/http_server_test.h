// The fixture of the HTTP sample's in-process tests (samples/http): each
// test runs an httpd::server on 127.0.0.1 (port 0) serving from a fiber,
// talks to it over TCP with http_clients in fibers, and stops it at the
// end. Responses are read with Beast's response_parser, every read with a
// deadline (patience), so that a missing answer fails the test instead of
// hanging it. No test sleeps to synchronise or checks how fast anything
// happened: the deadline tests set tiny limits and check only that the
// connection is closed in the end.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "fiber/fiber.h"
#include "io/address.h"
#include "io/conn.h"
#include "samples/http/server.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace httpd::test {

namespace http = boost::beast::http;
using namespace std::chrono_literals;
using response = http::response<http::string_body>;

// How long a client waits for an answer before the test fails. Generous:
// only a server that never answers should fail, even on a loaded machine
// under a sanitizer.
inline constexpr auto patience = 30s;

// An HTTP client on one connection, for fibers: it writes raw bytes and
// reads whole responses.
class http_client {
 public:
  explicit http_client(const spindle::address& server) : conn_(spindle::dial(server, patience)) {}

  void send(std::string_view bytes) {
    std::error_code ec;
    conn_.write_all(bytes, patience, ec);
    EXPECT_FALSE(ec) << "write: " << ec.message();
  }

  // read() reads the next response (to a HEAD request if `head`: no body
  // follows its header). One with status 0 if the connection ends first.
  response read(bool head = false) {
    http::response_parser<http::string_body> p;
    p.skip(head);
    p.eager(true);
    p.body_limit(1ull << 40);
    boost::beast::error_code ec;
    while (!p.is_done()) {
      if (!buffer_.empty()) {
        buffer_.erase(0, p.put(boost::asio::buffer(buffer_), ec));
        if (!ec) continue;
        if (ec != http::error::need_more) {
          ADD_FAILURE() << "bad response: " << ec.message() << "; unparsed: " << buffer_;
          return {};
        }
      }
      if (!read_more()) {
        if (p.got_some()) p.put_eof(ec);
        if (!p.is_done() || ec) return {};
      }
    }
    return p.release();
  }

  // get() sends a GET of `target` and reads the response.
  response get(std::string_view target, std::string_view headers = {}) {
    send("GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(headers) +
         "\r\n");
    return read();
  }

  // closed() reads until end of stream (or a reset) and says whether it
  // came without any more bytes first.
  bool closed() {
    const bool nothing = buffer_.empty();
    buffer_.clear();
    while (read_more()) {
    }
    const bool clean = nothing && buffer_.empty();
    EXPECT_TRUE(clean) << "bytes before the end: " << buffer_;
    return clean && !timed_out_;
  }

  spindle::connection& connection() { return conn_; }

 private:
  // Appends what comes next to buffer_; false at end of stream, on an
  // error, or after patience.
  bool read_more() {
    char chunk[16 * 1024];
    std::error_code ec;
    const std::size_t n = conn_.read_some(std::span<char>(chunk), patience, ec);
    if (ec == std::errc::timed_out) {
      ADD_FAILURE() << "no answer within " << patience.count() << " s";
      timed_out_ = true;
    }
    buffer_.append(chunk, n);
    return n > 0;
  }

  spindle::connection conn_;
  std::string buffer_;  // read and not yet parsed
  bool timed_out_ = false;
};

// The server's options in most tests: a free port of 127.0.0.1.
inline options test_options() {
  options o;
  o.listen = "127.0.0.1:0";
  return o;
}

// with_server() runs body(server) on a runtime of two workers, with a
// server with options `o` serving from a fiber; then stops the server
// and waits for serve() to return.
template <class Body>
void with_server(options o, Body body) {
  spindle::run(spindle::options{.workers = 2}, [&] {
    server s(std::move(o));
    spindle::fiber serving([&s] { s.serve(); });
    try {
      body(s);
    } catch (...) {
      s.stop();
      serving.join();
      throw;
    }
    s.stop();
    serving.join();
  });
}

template <class Body>
void with_server(Body body) {
  with_server(test_options(), std::move(body));
}

}  // namespace httpd::test
