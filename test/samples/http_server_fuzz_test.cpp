// The HTTP sample (samples/http/server.h) against thousands of random and
// mutated requests: valid requests with bytes flipped, inserted, deleted
// or cut off, several of them spliced on one connection, and plain random
// bytes. Deterministic (a seeded PRNG). The server must answer whatever
// it answers with a well-formed status line, close or go on as it likes,
// and still serve a valid request at the end; the test runner checks that
// no fiber is left, ASan that no memory is.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "http_server_test.h"
#include "sync/wait_group.h"

namespace httpd::test {
namespace {

// Requests to mutate: one of each kind the server takes.
const std::vector<std::string> seeds = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
    "PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "GET /file.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=1-3\r\n\r\n",
    "GET /%2e%2e/x?y=z HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 "
    "GMT\r\n\r\n",
};

// Bytes that matter to the parser, more likely than others to be put in.
constexpr std::string_view special("\r\n:; ,-0123456789aAfF%./\t\0", 26);

class mutator {
 public:
  explicit mutator(std::uint32_t seed) : rng_(seed) {}

  // The next input: a mutated seed, several spliced, or random bytes.
  std::string next() {
    switch (below(10)) {
      case 0: {  // random bytes
        std::string s(below(300), '\0');
        for (char& c : s) c = static_cast<char>(below(256));
        return s;
      }
      case 1:
      case 2: {  // several requests, each mutated or not, on one connection
        std::string s;
        for (std::size_t n = 1 + below(4); n > 0; --n) {
          s += below(2) == 0 ? seed() : mutate(seed());
        }
        return s;
      }
      default:
        return mutate(seed());
    }
  }

 private:
  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  const std::string& seed() { return seeds[below(seeds.size())]; }
  char byte() {
    return below(2) == 0 ? special[below(special.size())] : static_cast<char>(below(256));
  }

  std::string mutate(std::string s) {
    for (std::size_t n = 1 + below(4); n > 0 && !s.empty(); --n) {
      const std::size_t at = below(s.size());
      switch (below(5)) {
        case 0:
          s[at] = static_cast<char>(s[at] ^ (1 << below(8)));
          break;  // flip a bit
        case 1:
          s.insert(at, 1, byte());
          break;
        case 2:
          s.erase(at, 1 + below(4));
          break;
        case 3:
          s.resize(at);
          break;  // cut off
        case 4:
          s.insert(at, std::string(below(2) == 0 ? 1 + below(8) : 100 + below(400), byte()));
          break;
      }
    }
    return s;
  }

  std::mt19937 rng_;
};

// Sends `input` on a fresh connection, ends the writing half, and reads
// until the server closes. Whatever came must be HTTP responses.
void try_input(const spindle::address& server, const std::string& input) {
  http_client c(server);
  std::error_code ec;
  c.connection().write_all(input, patience, ec);  // the server may close before it has read all
  c.connection().shutdown(spindle::shutdown_type::write, ec);
  std::string answer;
  char buf[4096];
  while (std::size_t n = c.connection().read_some(std::span<char>(buf), patience, ec)) {
    answer.append(buf, n);
  }
  ASSERT_NE(ec, std::errc::timed_out)
      << "no end of stream for input: " << testing::PrintToString(input);
  if (!answer.empty()) {
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 ")) << testing::PrintToString(answer.substr(0, 100));
  }
}

TEST(HttpServerFuzz, SurvivesThousandsOfMutatedAndRandomRequests) {
  const std::size_t inputs = static_cast<std::size_t>(spindle::test::scaled(20000));
  constexpr std::size_t clients = 8;  // fibers sending at once
  options o = test_options();
  o.max_uri_bytes = 512;
  o.max_header_bytes = 1024;
  o.max_body_bytes = 256;
  // Every input ends with the client's end of stream, so no deadline
  // should be needed; these only bound a hang.
  o.header_timeout = 10s;
  o.body_timeout = 10s;
  o.linger_timeout = 10s;
  with_server(o, [&](server& s) {
    spindle::wait_group done;
    for (std::size_t k = 0; k < clients; ++k) {
      done.add();
      spindle::go([&, k] {
        mutator m(static_cast<std::uint32_t>(1234 + k));
        for (std::size_t i = k; i < inputs; i += clients) try_input(s.local_address(), m.next());
        done.done();
      });
    }
    done.wait();
    EXPECT_EQ(s.stats().accepted, inputs);
    http_client c(s.local_address());
    EXPECT_EQ(c.get("/").body(), "Hello, World!\n");
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_EQ(c.read().body(), "ok");
  });
}

}  // namespace
}  // namespace httpd::test
