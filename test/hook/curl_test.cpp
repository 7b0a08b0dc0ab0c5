// libcurl's easy API (curl_easy_perform) on fibers, with spindle::hook,
// against a real HTTP server (Python's http.server, test_servers.h).
// curl_easy_perform() drives a multi handle of its own and waits in
// poll(); the hook parks the calling fiber there, so that one worker
// runs hundreds of transfers at once.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hook/hook.h"
#include "sched/scheduler.h"
#include "sync/latch.h"
#include "test_servers.h"
#include "test_util.h"

namespace {

// curl_global_init() once for the program, before any test (it is not
// thread-safe), and its cleanup after the last.
class curl_environment : public testing::Environment {
 public:
  void SetUp() override { ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK); }
  void TearDown() override { curl_global_cleanup(); }
};
[[maybe_unused]] testing::Environment* const curl_env = testing::AddGlobalTestEnvironment(new curl_environment);

size_t append_to_string(char* data, size_t size, size_t count, void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

// A transfer's outcome: curl's code, the HTTP status, the body.
struct fetched {
  CURLcode code = CURLE_FAILED_INIT;
  long status = 0;
  std::string body;
  std::string error;  // curl's message
};

fetched fetch(const std::string& url) {
  fetched f;
  CURL* h = curl_easy_init();
  if (h == nullptr) return f;
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_to_string);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &f.body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for timeouts: they belong to no fiber
  // Bounds that only a broken hook reaches, turning a hang into a failure.
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
  f.code = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &f.status);
  f.error = error;
  curl_easy_cleanup(h);
  return f;
}

// The content of file `i`: sizes from 1 byte to about 64 KiB (most of
// them more than one read), each a pattern of its own.
std::string content_of(int i) {
  const std::size_t size = 1 + static_cast<std::size_t>(i) * 331 % 65536;
  std::string s(size, '\0');
  for (std::size_t k = 0; k < size; ++k) s[k] = static_cast<char>('a' + (k * 7 + static_cast<std::size_t>(i)) % 26);
  return s;
}

TEST(CurlTest, TheHookIsLinkedIntoThisProgram) { EXPECT_TRUE(spindle::hook::linked()); }

// 200 fibers on one worker each fetch a file of their own, all released
// at once; every body must be its file's.
TEST(CurlTest, TwoHundredFibersOnOneWorkerFetchTheirOwnFilesAtOnce) {
  const int clients = static_cast<int>(spindle::test::max_concurrent_fibers(200));
  ASSERT_GE(spindle::test::raise_descriptor_limit(), static_cast<rlim_t>(3 * clients + 64));
  spindle::test::http_server http;
  for (int i = 0; i < clients; ++i) http.put("file-" + std::to_string(i) + ".txt", content_of(i));

  std::vector<fetched> results(clients);
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] {
    spindle::latch start(clients);
    std::vector<spindle::thread> fibers;
    for (int i = 0; i < clients; ++i) {
      fibers.emplace_back([&, i] {
        start.arrive_and_wait();
        results[i] = fetch(http.url("file-" + std::to_string(i) + ".txt"));
      });
    }
    for (spindle::thread& f : fibers) f.join();
  });
  for (int i = 0; i < clients; ++i) {
    EXPECT_EQ(results[i].code, CURLE_OK) << "file " << i << ": " << results[i].error;
    EXPECT_EQ(results[i].status, 200) << "file " << i;
    EXPECT_TRUE(results[i].body == content_of(i))
        << "file " << i << ": " << results[i].body.size() << " bytes, wanted " << content_of(i).size();
  }
}

TEST(CurlTest, AFetchFromAPortThatRefusesFailsWithCouldntConnectNotAHang) {
  spindle::test::refused_port closed;
  fetched f;
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0},
               [&] { f = fetch("http://127.0.0.1:" + std::to_string(closed.port()) + "/nothing"); });
  EXPECT_EQ(f.code, CURLE_COULDNT_CONNECT) << f.error;
}

// gathering_server: an HTTP/1.0 server of fibers, on the runtime of its
// clients, written with plain blocking calls (accept, recv, send) as a
// thread-per-connection server would be: it takes `clients` connections
// and reads each one's request, but answers none of them (GET /file-<i>
// gets content_of(i)) before it has all `clients` requests. Construct
// and destroy it on a fiber.
class gathering_server {
 public:
  explicit gathering_server(int clients) : clients_(clients), gathered_(clients) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(listener_, 4096), 0) << std::strerror(errno);
    EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    acceptor_ = spindle::thread([this] { accept_loop(); });
  }
  ~gathering_server() {
    acceptor_.join();
    for (spindle::thread& h : handlers_) h.join();
    ::close(listener_);
  }
  gathering_server(const gathering_server&) = delete;
  gathering_server& operator=(const gathering_server&) = delete;

  std::string url(int i) const { return "http://127.0.0.1:" + std::to_string(port_) + "/file-" + std::to_string(i); }

 private:
  void accept_loop() {
    for (int i = 0; i < clients_; ++i) {
      const int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) {
        ADD_FAILURE() << "accept: " << std::strerror(errno);
        for (; i < clients_; ++i) gathered_.count_down();  // no handler waits for ever
        return;
      }
      handlers_.emplace_back([this, c] { handle(c); });
    }
  }

  void handle(int c) {
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
    }
    gathered_.arrive_and_wait();
    // "GET /file-<i> HTTP/1.1"
    const std::string prefix = "GET /file-";
    std::string reply = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    if (request.starts_with(prefix)) {
      const std::string body = content_of(std::atoi(request.c_str() + prefix.size()));
      reply = "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    // A blocking send on a byte stream sends it all (the hook keeps that).
    (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  const int clients_;
  int listener_ = -1;
  int port_ = 0;
  spindle::latch gathered_;
  spindle::thread acceptor_;
  std::vector<spindle::thread> handlers_;
};

// 200 fibers on one worker fetch from a server of fibers on the same
// worker that answers only once all 200 requests are in: every transfer
// completes only if all 200 curl_easy_perform() calls were parked at
// once, each waiting for its answer in curl's poll(), while the worker
// ran the server's fibers. Without the hook the first poll() would block
// the worker for good.
TEST(CurlTest, TwoHundredTransfersOnOneWorkerAreInFlightAtOnce) {
  const int clients = static_cast<int>(spindle::test::max_concurrent_fibers(200));
  ASSERT_GE(spindle::test::raise_descriptor_limit(), static_cast<rlim_t>(4 * clients + 64));
  std::vector<fetched> results(clients);
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] {
    gathering_server server(clients);
    std::vector<spindle::thread> fibers;
    for (int i = 0; i < clients; ++i) fibers.emplace_back([&, i] { results[i] = fetch(server.url(i)); });
    for (spindle::thread& f : fibers) f.join();
  });
  for (int i = 0; i < clients; ++i) {
    EXPECT_EQ(results[i].code, CURLE_OK) << "transfer " << i << ": " << results[i].error;
    EXPECT_EQ(results[i].status, 200) << "transfer " << i;
    EXPECT_TRUE(results[i].body == content_of(i))
        << "transfer " << i << ": " << results[i].body.size() << " bytes, wanted " << content_of(i).size();
  }
}

}  // namespace
