// No test here needs a network or a DNS server: they use literals,
// "localhost" (from /etc/hosts), and errors found without asking one.
#include "io/dns.h"

#include <netdb.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using spindle::address;
using spindle::resolve;
using spindle::resolve_options;
using namespace std::chrono_literals;

std::error_code dns_error(int eai) { return {eai, spindle::dns_category()}; }

bool all_loopback(const std::vector<address>& addrs) {
  for (const address& a : addrs) {
    if (!a.is_loopback()) return false;
  }
  return true;
}

bool has_duplicates(const std::vector<address>& addrs) {
  for (std::size_t i = 0; i < addrs.size(); ++i) {
    for (std::size_t j = i + 1; j < addrs.size(); ++j) {
      if (addrs[i] == addrs[j]) return true;
    }
  }
  return false;
}

class DnsTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(DnsTest, 1u, 2u, 4u);

TEST_P(DnsTest, NumericLiteralsResolveAtOnceWithoutThePool) {
  spindle::run(opts(), [] {
    EXPECT_EQ(resolve("127.0.0.1", "80"), std::vector{address::ipv4("127.0.0.1", 80)});
    EXPECT_EQ(resolve("::1", "443"), std::vector{address::ipv6("::1", 443)});
    EXPECT_EQ(resolve("fe80::1%lo", "80"), std::vector{address::ipv6("fe80::1%lo", 80)});
    EXPECT_EQ(resolve("10.1.2.3", ""), std::vector{address::ipv4("10.1.2.3", 0)});
    EXPECT_EQ(resolve("127.0.0.1", "80", {.socktype = 0}),
              std::vector{address::ipv4("127.0.0.1", 80)});
    EXPECT_EQ(resolve("127.0.0.1", "53", {.socktype = SOCK_DGRAM}),
              std::vector{address::ipv4("127.0.0.1", 53)});
    EXPECT_EQ(resolve("[::1]:8080"), std::vector{address::ipv6("::1", 8080)});
    // An empty host: loopback, or with passive the wildcard addresses.
    EXPECT_EQ(resolve("", "80"),
              (std::vector{address::ipv6("::1", 80), address::ipv4("127.0.0.1", 80)}));
    EXPECT_EQ(resolve("", "80", {.passive = true}),
              (std::vector{address::ipv4("0.0.0.0", 80), address::ipv6("::", 80)}));
    EXPECT_EQ(resolve(":8080", {.family = AF_INET, .passive = true}),
              std::vector{address::ipv4("0.0.0.0", 8080)});
    // A literal needs no lookup, so a deadline that has passed is no matter.
    EXPECT_EQ(resolve("127.0.0.1", "80", {.deadline = std::chrono::steady_clock::now() - 1h}),
              std::vector{address::ipv4("127.0.0.1", 80)});

    const spindle::blocking_pool_stats stats = spindle::blocking_stats();
    EXPECT_EQ(stats.completed, 0u);
    EXPECT_EQ(stats.peak_threads, 0u);  // no pool thread was ever started
  });
}

TEST_P(DnsTest, LocalhostResolvesThroughThePoolToLoopbackAddresses) {
  spindle::run(opts(), [] {
    const std::vector<address> addrs = resolve("localhost", "80");
    ASSERT_FALSE(addrs.empty());
    EXPECT_TRUE(all_loopback(addrs));
    for (const address& a : addrs) EXPECT_EQ(a.port(), 80) << a;
    EXPECT_FALSE(has_duplicates(addrs));
    // The lookup ran on a pool thread (the runtime is new: it had none).
    EXPECT_GE(spindle::blocking_stats().peak_threads, 1u);
    // The pool counts a call as completed just after it wakes the caller:
    // wait for the count (it comes, as the call has run).
    while (spindle::blocking_stats().completed == 0) spindle::this_fiber::yield();
  });
}

TEST_P(DnsTest, TheFamilyFilterGivesOnlyThatFamily) {
  spindle::run(opts(), [] {
    const std::vector<address> v4 = resolve("localhost", "80", {.family = AF_INET});
    ASSERT_FALSE(v4.empty());
    for (const address& a : v4) EXPECT_TRUE(a.is_ipv4()) << a;
    EXPECT_NE(std::find(v4.begin(), v4.end(), address::ipv4("127.0.0.1", 80)), v4.end());

    EXPECT_EQ(resolve("", "80", {.family = AF_INET6}), std::vector{address::ipv6("::1", 80)});

    // A literal of the other family is an error, as getaddrinfo has it.
    std::error_code ec;
    EXPECT_TRUE(resolve("::1", "80", {.family = AF_INET}, ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_ADDRFAMILY));
    EXPECT_TRUE(resolve("127.0.0.1", "80", {.family = AF_INET6}, ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_ADDRFAMILY));
    // A family resolve() does not do.
    EXPECT_TRUE(resolve("localhost", "80", {.family = AF_UNIX}, ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_FAMILY));
    EXPECT_EQ(ec, std::errc::address_family_not_supported);
  });
}

TEST_P(DnsTest, EachAddressComesOnceWhateverTheSocketTypes) {
  spindle::run(opts(), [] {
    // With socktype 0, getaddrinfo gives each address once per socket
    // type (stream, datagram, raw).
    const std::vector<address> any = resolve("localhost", "80", {.socktype = 0});
    ASSERT_FALSE(any.empty());
    EXPECT_FALSE(has_duplicates(any));
    EXPECT_TRUE(all_loopback(any));
    const std::vector<address> dgram = resolve("localhost", "53", {.socktype = SOCK_DGRAM});
    ASSERT_FALSE(dgram.empty());
    EXPECT_TRUE(all_loopback(dgram));
  });
}

TEST_P(DnsTest, TheHostPortFormSplitsHostAndPort) {
  spindle::run(opts(), [] {
    const std::vector<address> local = resolve("localhost:8080");
    ASSERT_FALSE(local.empty());
    EXPECT_TRUE(all_loopback(local));
    for (const address& a : local) EXPECT_EQ(a.port(), 8080) << a;
    EXPECT_EQ(resolve("127.0.0.1:80"), std::vector{address::ipv4("127.0.0.1", 80)});
    EXPECT_EQ(resolve("[::1]:53", {.socktype = SOCK_DGRAM}), std::vector{address::ipv6("::1", 53)});
    EXPECT_EQ(resolve("[fe80::1%lo]:80"), std::vector{address::ipv6("fe80::1%lo", 80)});

    // No port, or an IPv6 literal without brackets: malformed text.
    for (const char* text : {"localhost", "127.0.0.1", "::1:80", "[::1]", "[::1]x:80", ""}) {
      std::error_code ec;
      EXPECT_TRUE(resolve(text, ec).empty()) << text;
      EXPECT_EQ(ec, std::errc::invalid_argument) << text;
      try {
        (void)resolve(text);
        ADD_FAILURE() << "no exception for " << text;
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), std::errc::invalid_argument) << text;
      }
    }
  });
}

TEST_P(DnsTest, AnUnknownServiceIsEaiServiceInBothForms) {
  spindle::run(opts(), [] {
    std::error_code ec;
    EXPECT_TRUE(resolve("127.0.0.1", "no-such-service-xyz", ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_SERVICE));
    EXPECT_EQ(ec.category(), spindle::dns_category());
    EXPECT_EQ(ec.message(), gai_strerror(EAI_SERVICE));

    ec.clear();
    EXPECT_TRUE(resolve("127.0.0.1:no-such-service-xyz", ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_SERVICE));

    try {
      (void)resolve("127.0.0.1", "no-such-service-xyz");
      ADD_FAILURE() << "resolve() did not throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), dns_error(EAI_SERVICE));
      EXPECT_NE(std::string(e.what()).find("no-such-service-xyz"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)resolve("127.0.0.1:no-such-service-xyz"), std::system_error);

    // A success clears ec.
    ec = dns_error(EAI_SERVICE);
    EXPECT_FALSE(resolve("127.0.0.1", "80", ec).empty());
    EXPECT_FALSE(ec);
  });
}

TEST_P(DnsTest, APortOutOfRangeOrNotANumberIsEaiServiceWithoutALookup) {
  spindle::run(opts(), [] {
    // getaddrinfo would truncate 99999 to 16 bits; resolve() refuses it.
    for (const char* service : {"99999", "65536", "4294967376", "-1", "+80", " 80"}) {
      std::error_code ec;
      EXPECT_TRUE(resolve("127.0.0.1", service, ec).empty()) << service;
      EXPECT_EQ(ec, dns_error(EAI_SERVICE)) << service;
      EXPECT_TRUE(resolve("localhost", service, ec).empty()) << service;
      EXPECT_EQ(ec, dns_error(EAI_SERVICE)) << service;
    }
    EXPECT_EQ(spindle::blocking_stats().peak_threads, 0u);
  });
}

TEST_P(DnsTest, NoHostAndNoServiceIsEaiNoname) {
  spindle::run(opts(), [] {
    std::error_code ec;
    EXPECT_TRUE(resolve("", "", ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_NONAME));
    // A NUL would make getaddrinfo look up a shorter name.
    EXPECT_TRUE(resolve(std::string_view("localhost\0.evil", 15), "80", ec).empty());
    EXPECT_EQ(ec, dns_error(EAI_NONAME));
  });
}

TEST_P(DnsTest, ADeadlineAlreadyPassedOnANameIsTimedOut) {
  spindle::run(opts(), [] {
    const resolve_options past{.deadline = std::chrono::steady_clock::now() - 1s};
    std::error_code ec;
    EXPECT_TRUE(resolve("localhost", "80", past, ec).empty());
    EXPECT_EQ(ec, std::errc::timed_out);
    EXPECT_TRUE(resolve("localhost:80", past, ec).empty());
    EXPECT_EQ(ec, std::errc::timed_out);
    try {
      (void)resolve("localhost", "80", past);
      ADD_FAILURE() << "resolve() did not throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
    }
  });
}

TEST_P(DnsTest, ANameResolvesBeforeAFarDeadline) {
  spindle::run(opts(), [] {
    const resolve_options far{.deadline = std::chrono::steady_clock::now() + 1h};
    const std::vector<address> addrs = resolve("localhost", "80", far);
    ASSERT_FALSE(addrs.empty());
    EXPECT_TRUE(all_loopback(addrs));
  });
}

class DnsConcurrencyTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(DnsConcurrencyTest, 2u, 4u);

TEST_P(DnsConcurrencyTest, ManyFibersResolvingAtOnceAllGetTheirAnswers) {
  constexpr int fibers = 200;
  std::atomic<int> ok{0};
  spindle::run(opts(), [&] {
    std::vector<spindle::fiber> all;
    for (int i = 0; i < fibers; ++i) {
      all.emplace_back([&ok, i] {
        const auto port = static_cast<std::uint16_t>(1000 + i);
        const std::string service = std::to_string(port);
        std::error_code ec;
        std::vector<address> addrs;
        switch (i % 4) {
          case 0:
            addrs = resolve("localhost", service, ec);
            break;
          case 1:
            addrs = resolve("127.0.0.1", service, ec);
            break;
          case 2:
            addrs = resolve("[::1]:" + service, ec);
            break;
          default:
            addrs = resolve("localhost:" + service, {.family = AF_INET}, ec);
            break;
        }
        EXPECT_FALSE(ec) << i << ": " << ec.message();
        EXPECT_FALSE(addrs.empty()) << i;
        bool good = !ec && !addrs.empty();
        for (const address& a : addrs) good = good && a.is_loopback() && a.port() == port;
        if (good) ok.fetch_add(1);
      });
    }
    for (auto& f : all) f.join();
  });
  EXPECT_EQ(ok.load(), fibers);
}

TEST(DnsPlainThreadTest, ResolveRunsInlineOnAPlainThread) {
  const std::vector<address> local = resolve("localhost", "80");
  ASSERT_FALSE(local.empty());
  EXPECT_TRUE(all_loopback(local));
  EXPECT_EQ(resolve("127.0.0.1:80"), std::vector{address::ipv4("127.0.0.1", 80)});
  EXPECT_FALSE(resolve("localhost", "80", {.deadline = std::chrono::steady_clock::now() + 1h})
                   .empty());

  std::error_code ec;
  EXPECT_TRUE(resolve("127.0.0.1", "no-such-service-xyz", ec).empty());
  EXPECT_EQ(ec, dns_error(EAI_SERVICE));
  EXPECT_TRUE(resolve("localhost", "80", {.deadline = std::chrono::steady_clock::now() - 1s}, ec)
                  .empty());
  EXPECT_EQ(ec, std::errc::timed_out);

  const spindle::blocking_pool_stats stats = spindle::blocking_stats();
  EXPECT_EQ(stats.threads, 0u);
  EXPECT_EQ(stats.completed, 0u);
}

TEST(DnsCategoryTest, CodesAreGetaddrinfosWithItsMessages) {
  const std::error_category& cat = spindle::dns_category();
  EXPECT_STREQ(cat.name(), "spindle.dns");
  EXPECT_EQ(&cat, &spindle::dns_category());
  for (int code : {EAI_NONAME, EAI_SERVICE, EAI_AGAIN, EAI_FAIL, EAI_FAMILY, EAI_ADDRFAMILY}) {
    EXPECT_EQ(cat.message(code), gai_strerror(code)) << code;
  }
  EXPECT_EQ(dns_error(EAI_MEMORY), std::errc::not_enough_memory);
  EXPECT_EQ(dns_error(EAI_FAMILY), std::errc::address_family_not_supported);
  EXPECT_EQ(dns_error(EAI_BADFLAGS), std::errc::invalid_argument);
  EXPECT_NE(dns_error(EAI_NONAME), std::errc::invalid_argument);
  EXPECT_NE(dns_error(EAI_NONAME), dns_error(EAI_SERVICE));
}

}  // namespace
