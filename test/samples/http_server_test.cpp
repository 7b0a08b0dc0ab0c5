// The HTTP sample's protocol (samples/http/server.h): keep-alive,
// pipelining, bodies, HEAD, Connection, 100-continue, every error status,
// the deadlines, the connection limit and the graceful stop. Static files
// are in http_server_files_test.cpp.
#include "http_server_test.h"

#include <atomic>
#include <string>
#include <vector>

#include "fiber/this_fiber.h"
#include "samples/http/static_files.h"

namespace httpd::test {
namespace {

using testing::HasSubstr;

TEST(HttpServer, AnswersHelloWithDateAndLengthOnTheRootPath) {
  with_server([](server& s) {
    http_client c(s.local_address());
    const response r = c.get("/");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "Hello, World!\n");
    EXPECT_EQ(r[http::field::content_length], "14");
    EXPECT_EQ(r[http::field::content_type], "text/plain");
    EXPECT_TRUE(detail::parse_http_date(r[http::field::date]).has_value()) << r[http::field::date];
  });
}

TEST(HttpServer, KeepsTheConnectionOpenBetweenRequests) {
  with_server([](server& s) {
    http_client c(s.local_address());
    for (int i = 0; i < 3; ++i) {
      const response r = c.get("/");
      EXPECT_EQ(r.result_int(), 200);
      EXPECT_EQ(r[http::field::connection], "keep-alive");
    }
    EXPECT_EQ(s.stats().accepted, 1u);
  });
}

TEST(HttpServer, AnswersPipelinedRequestsInOrder) {
  with_server([](server& s) {
    http_client c(s.local_address());
    c.send(
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirst"
        "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
        "PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
        "chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n");
    EXPECT_EQ(c.read().body(), "Hello, World!\n");
    EXPECT_EQ(c.read().body(), "first");
    EXPECT_EQ(c.read().result_int(), 404);
    EXPECT_EQ(c.read().body(), "second");
    EXPECT_EQ(c.get("/").result_int(), 200);
  });
}

TEST(HttpServer, AnswersAThousandPipelinedRequestsSentAtOnceInOrder) {
  with_server([](server& s) {
    http_client c(s.local_address());
    std::string all;
    for (int i = 0; i < 1000; ++i) {
      const std::string body = std::to_string(i);
      all += i % 2 == 0 ? "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                        : "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    c.send(all);  // some 40 KB, more than the server reads at once
    for (int i = 0; i < 1000; ++i) {
      EXPECT_EQ(c.read().body(), i % 2 == 0 ? "Hello, World!\n" : std::to_string(i)) << i;
    }
  });
}

TEST(HttpServer, EchoesABodyGivenWithContentLength) {
  with_server([](server& s) {
    http_client c(s.local_address());
    const std::string body(100000, 'x');
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + body);
    const response r = c.read();
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), body);
  });
}

TEST(HttpServer, EchoesAChunkedBodyWithExtensionsAndTrailers) {
  with_server([](server& s) {
    http_client c(s.local_address());
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send("5;name=value\r\nhello\r\n");
    c.send("7;x\r\n, world\r\n0\r\nTrailer-One: 1\r\nTrailer-Two: 2\r\n\r\n");
    const response r = c.read();
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "hello, world");
    EXPECT_EQ(c.get("/").result_int(), 200);  // the trailers were all read
  });
}

TEST(HttpServer, AnswersHeadWithTheHeadersOfGetAndNoBody) {
  with_server([](server& s) {
    http_client c(s.local_address());
    const response get = c.get("/");
    c.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    const response head = c.read(/*head=*/true);
    EXPECT_EQ(head.result_int(), 200);
    EXPECT_EQ(head[http::field::content_length], get[http::field::content_length]);
    EXPECT_EQ(head[http::field::content_type], get[http::field::content_type]);
    // No body came: the next response is read right after the header.
    EXPECT_EQ(c.get("/").body(), "Hello, World!\n");
  });
}

TEST(HttpServer, ClosesAfterARequestWithConnectionClose) {
  with_server([](server& s) {
    http_client c(s.local_address());
    const response r = c.get("/", "Connection: close\r\n");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r[http::field::connection], "close");
    EXPECT_TRUE(c.closed());
  });
}

TEST(HttpServer, ClosesAfterAnHttp10RequestUnlessItAsksForKeepAlive) {
  with_server([](server& s) {
    http_client once(s.local_address());
    once.send("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(once.read()[http::field::connection], "close");
    EXPECT_TRUE(once.closed());

    http_client kept(s.local_address());
    for (int i = 0; i < 2; ++i) {
      kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      const response r = kept.read();
      EXPECT_EQ(r.result_int(), 200);
      EXPECT_EQ(r[http::field::connection], "keep-alive");
    }
  });
}

TEST(HttpServer, SendsContinueBeforeItReadsTheBody) {
  with_server([](server& s) {
    http_client c(s.local_address());
    c.send("PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 100);  // before any of the body was sent
    c.send("body");
    const response r = c.read();
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "body");
  });
}

TEST(HttpServer, AnswersABodyOverTheLimitWith413InsteadOfContinue) {
  options o = test_options();
  o.max_body_bytes = 10;
  with_server(o, [](server& s) {
    http_client c(s.local_address());
    c.send("PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    const response r = c.read();
    EXPECT_EQ(r.result_int(), 413);
    EXPECT_EQ(r[http::field::connection], "close");
    EXPECT_TRUE(c.closed());
  });
}

TEST(HttpServer, AnswersAMethodARouteDoesNotTakeWith405AndAllow) {
  with_server([](server& s) {
    http_client c(s.local_address());
    c.send("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n");
    const response r = c.read();
    EXPECT_EQ(r.result_int(), 405);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD");
    EXPECT_EQ(c.get("/").result_int(), 200);  // no body: the connection goes on

    http_client with_body(s.local_address());
    with_body.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    EXPECT_EQ(with_body.read().result_int(), 405);
    EXPECT_TRUE(with_body.closed());  // its body unread: closed
  });
}

// A request the server rejects: the status it gets, and then the
// connection closes.
struct bad_request {
  const char* name;
  std::string bytes;
  unsigned status;
};

void PrintTo(const bad_request& b, std::ostream* os) { *os << b.name; }

options small_limits() {
  options o = test_options();
  o.max_uri_bytes = 100;
  o.max_header_bytes = 300;
  o.max_body_bytes = 20;
  return o;
}

class HttpServerRejects : public testing::TestWithParam<bad_request> {};

INSTANTIATE_TEST_SUITE_P(
    Requests, HttpServerRejects,
    testing::Values(
        bad_request{"AMalformedRequestLine", "GET /\r\n\r\n", 400},
        bad_request{"AMalformedHeader", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
        bad_request{"HttpOneOneWithoutHost", "GET / HTTP/1.1\r\n\r\n", 400},
        bad_request{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        bad_request{"ContentLengthAndTransferEncoding",
                    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                    400},
        bad_request{"TransferEncodingAndContentLength",
                    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                    400},
        bad_request{
            "TwoDifferentContentLengths",
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400},
        bad_request{"ATransferEncodingThatDoesNotEndInChunked",
                    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                    400},
        bad_request{"ATransferEncodingOnHttpOneZero",
                    "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        bad_request{"ABadChunkSize",
                    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    400},
        bad_request{"ATargetThatIsNotAPath", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        bad_request{"AnUnknownTransferCoding",
                    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                    "0\r\n\r\n",
                    501},
        bad_request{
            "AContentLengthOverTheLimit",
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 21\r\n\r\n" + std::string(21, 'b'),
            413},
        bad_request{"AChunkedBodyOverTheLimit",
                    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
                    413},
        bad_request{"AHeaderOverTheLimit",
                    "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(400, 'h') + "\r\n\r\n",
                    431},
        bad_request{"ARequestLineOverTheLimit",
                    "GET /" + std::string(200, 'u') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
        bad_request{"AnUnfinishedRequestLineOverTheLimit", "GET /" + std::string(200, 'u'), 414},
        bad_request{"HttpTwo", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        bad_request{"HttpZero", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505}),
    [](const testing::TestParamInfo<bad_request>& info) { return info.param.name; });

TEST_P(HttpServerRejects, WithItsStatusAndCloses) {
  with_server(small_limits(), [](server& s) {
    http_client c(s.local_address());
    c.send(GetParam().bytes);
    const response r = c.read();
    EXPECT_EQ(r.result_int(), GetParam().status);
    EXPECT_EQ(r[http::field::connection], "close");
    EXPECT_TRUE(c.closed());
  });
}

TEST(HttpServer, CutsOffAHeaderThatTricklesInPastItsDeadline) {
  options o = test_options();
  o.header_timeout = 50ms;
  with_server(o, [](server& s) {
    http_client c(s.local_address());
    c.send("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
    // Slowloris: a byte every few milliseconds, for as long as the server
    // takes them; the sleep paces the client, it synchronises nothing.
    std::atomic<bool> done{false};
    spindle::fiber trickle([&] {
      std::error_code ec;
      while (!done.load() && !ec) {
        c.connection().write_all("a", patience, ec);
        spindle::this_fiber::sleep_for(5ms);
      }
    });
    EXPECT_TRUE(c.closed());  // no response, then end of stream
    done.store(true);
    trickle.join();
  });
}

TEST(HttpServer, ClosesAConnectionThatSendsNoRequest) {
  options o = test_options();
  o.header_timeout = 50ms;
  with_server(o, [](server& s) {
    http_client c(s.local_address());
    EXPECT_TRUE(c.closed());
  });
}

TEST(HttpServer, ClosesAConnectionIdleForTheKeepAliveTimeout) {
  options o = test_options();
  o.keepalive_timeout = 50ms;
  with_server(o, [](server& s) {
    http_client c(s.local_address());
    EXPECT_EQ(c.get("/").result_int(), 200);
    EXPECT_TRUE(c.closed());
  });
}

TEST(HttpServer, ClosesConnectionsBeyondItsLimitAtOnce) {
  options o = test_options();
  o.max_connections = 1;
  with_server(o, [](server& s) {
    auto first = std::make_unique<http_client>(s.local_address());
    EXPECT_EQ(first->get("/").result_int(), 200);
    {
      http_client second(s.local_address());
      EXPECT_TRUE(second.closed());
    }
    EXPECT_EQ(s.stats().refused, 1u);
    first.reset();
    spindle::test::yield_until([&] { return s.stats().connections == 0; });
    http_client third(s.local_address());
    EXPECT_EQ(third.get("/").result_int(), 200);
  });
}

TEST(HttpServer, StopsAfterAnsweringTheRequestInProgressAndClosingIdleConnections) {
  with_server([](server& s) {
    http_client idle(s.local_address());
    EXPECT_EQ(idle.get("/").result_int(), 200);
    http_client busy(s.local_address());
    busy.send("PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    EXPECT_EQ(busy.read().result_int(), 100);  // the server is reading its body now

    s.stop();
    EXPECT_TRUE(idle.closed());
    busy.send("body");
    const response r = busy.read();
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "body");
    EXPECT_EQ(r[http::field::connection], "close");
    EXPECT_TRUE(busy.closed());
  });
}

}  // namespace
}  // namespace httpd::test
