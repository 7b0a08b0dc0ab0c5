// The hooked resolver calls on a fiber against the same calls on a plain
// thread: getaddrinfo, gethostbyname_r. On a fiber they run on the
// blocking pool while the fiber parks, so another fiber of the same
// (only) worker runs meanwhile. Only names the test machine resolves from
// /etc/hosts ("localhost") and numeric ones: no network. test/hook/
// family_util.h says how each scenario runs on both.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "hook/family_util.h"

namespace {

using namespace spindle::test::family;
using outcomes = std::vector<outcome>;

// resolved(call): runs the resolver `call` beside a companion that
// records whether it ran while the resolving fiber was parked (on a plain
// thread the call is not hooked: the record says 1 there).
outcomes resolved(const std::function<outcome()>& call) {
  std::atomic<bool> done{false};
  bool saw_it_parked = !on_fiber();
  companion other([&] {
    if (!on_fiber()) return;
    await_parked_or(done);
    saw_it_parked = !done.load();
  });
  const outcome o = call();
  done = true;
  other.join();
  return outcomes{o, returned(saw_it_parked)};
}

// The IPv4 addresses of a getaddrinfo() result, as "127.0.0.1:80,...".
std::string addresses(const addrinfo* list) {
  std::string s;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET) continue;
    const auto* a = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    s += (s.empty() ? "" : ",") + std::string(text) + ":" + std::to_string(ntohs(a->sin_port));
  }
  return s;
}

// getaddrinfo(node, service) for IPv4 stream sockets, with `flags`: its
// result and addresses (errno is the resolver's own business on success,
// so only the result is compared).
outcome lookup(const char* node, const char* service, int flags) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  addrinfo* list = nullptr;
  const int r = ::getaddrinfo(node, service, &hints, &list);
  outcome o{r, 0, r == 0 ? addresses(list) : std::string()};
  if (list != nullptr) ::freeaddrinfo(list);
  return o;
}

TEST(HookDnsTest, GetaddrinfoOnAFiberRunsOnTheBlockingPoolWhileAnotherFiberOnTheSameWorkerRuns) {
  expect_on_both([] { return resolved([] { return lookup("localhost", "80", 0); }); },
                 outcomes{returned(0, "127.0.0.1:80"), returned(1)});
}

TEST(HookDnsTest, GetaddrinfoOfNumericNamesResolvesThemAndRejectsANameWhereANumberWasAskedFor) {
  expect_on_both(
      [] {
        return outcomes{lookup("127.0.0.2", "8080", AI_NUMERICHOST | AI_NUMERICSERV),
                        lookup("localhost", "80", AI_NUMERICHOST), lookup("127.0.0.1", "http", AI_NUMERICSERV),
                        lookup(nullptr, "80", AI_PASSIVE)};
      },
      outcomes{returned(0, "127.0.0.2:8080"), returned(EAI_NONAME), returned(EAI_NONAME), returned(0, "0.0.0.0:80")});
}

TEST(HookDnsTest, GetaddrinfoWithBadFlagsOrAnUnknownServiceFailsAsWithoutTheHook) {
  expect_on_both(
      [] {
        return outcomes{lookup("localhost", "80", 0x7ff0000), lookup("localhost", "no-such-service-here", 0),
                        lookup(nullptr, nullptr, 0)};
      },
      outcomes{returned(EAI_BADFLAGS), returned(EAI_SERVICE), returned(EAI_NONAME)});
}

// gethostbyname_r(name) with a buffer of `buflen`: its result, *err (the
// h_errno), errno, and the first address.
outcome host_by_name(const char* name, std::size_t buflen) {
  hostent he{};
  hostent* result = nullptr;
  int herr = -1;
  std::vector<char> buf(buflen);
  outcome o = capture([&] { return ::gethostbyname_r(name, &he, buf.data(), buf.size(), &result, &herr); });
  if (result != nullptr && result->h_addr_list[0] != nullptr) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(result->h_addrtype, result->h_addr_list[0], text, sizeof text);
    o.data = text;
  } else {
    o.data = "h_errno " + std::to_string(herr);
  }
  // errno is the resolver's own business unless the call failed.
  if (o.result == 0) o.error = 0;
  return o;
}

TEST(HookDnsTest, GethostbynameROnAFiberRunsOnTheBlockingPoolWhileAnotherFiberOnTheSameWorkerRuns) {
  expect_on_both([] { return resolved([] { return host_by_name("localhost", 1024); }); },
                 outcomes{returned(0, "127.0.0.1"), returned(1)});
}

TEST(HookDnsTest, GethostbynameRWithATooSmallBufferFailsWithErangeInResultAndErrno) {
  expect_on_both([] { return resolved([] { return host_by_name("localhost", 4); }); },
                 outcomes{outcome{ERANGE, ERANGE, "h_errno " + std::to_string(NETDB_INTERNAL)}, returned(1)});
}

TEST(HookDnsTest, GethostbynameROfANumericAddressReturnsIt) {
  expect_on_both([] { return outcomes{host_by_name("127.0.0.3", 1024)}; }, outcomes{returned(0, "127.0.0.3")});
}

}  // namespace
