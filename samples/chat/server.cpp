// The chat server (server.h): chat::server, and server_impl's accept
// loop, stop and counters. How the rest is put together:
//
//   detail/server_impl.h  the state, its locks and their order;
//   client.cpp            a connection: its session, which reads lines,
//                         and its bounded send queue and writer;
//   commands.cpp          the IRC commands, over the shared state.
//
// Each connection is a `client` served by two fibers, a session and a
// writer; serve() starts the session, which starts the writer, and waits
// for every session to end before it returns.
#include "samples/chat/server.h"

#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fiber/assert.h"
#include "fiber/fiber.h"
#include "samples/chat/detail/server_impl.h"

namespace chat {
namespace detail {
namespace {

// The time now, as 003 gives when the server was created.
std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a %b %d %Y at %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

server_impl::server_impl(options o)
    : opts_(std::move(o)), listener_(spindle::listen(opts_.listen)), created_(now_text()) {}

void server_impl::stop() {
  if (stopping_.exchange(true)) return;
  std::error_code ignored;
  listener_.close(ignored);  // serve()'s accept wakes with operation_canceled
}

void server_impl::serve() {
  while (!stopping_.load()) {
    std::error_code ec;
    spindle::connection conn = listener_.accept(ec);
    if (ec == std::errc::operation_canceled || ec == std::errc::bad_file_descriptor) break;
    if (ec) continue;  // the listener backs off by itself on EMFILE
    std::string ip = conn.remote_address(ec).ip();
    if (ec) ip = "unknown";
    auto c = std::make_shared<client>(*this, std::move(conn), std::move(ip));
    bool refused = false;
    {
      std::lock_guard lock(conns_mu_);
      // Counted under the lock that makes the client visible, so that
      // stats() never shows a connection accepted but not yet a client.
      accepted_.fetch_add(1, std::memory_order_relaxed);
      std::size_t& from_ip = per_ip_[c->ip_];
      if (clients_.size() >= opts_.max_clients || from_ip >= opts_.max_clients_per_ip) {
        refused = true;
        if (from_ip == 0) per_ip_.erase(c->ip_);
      } else {
        ++from_ip;
        clients_.emplace(c.get(), c);
      }
    }
    if (refused) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      std::error_code ignored;
      c->conn_.write_all("ERROR :Too many connections\r\n", std::chrono::milliseconds(100), ignored);
      c->conn_.close(ignored);
      continue;
    }
    sessions_.add(1);
    spindle::go([this, c = std::move(c)] {
      session(c);
      {
        std::lock_guard lock(conns_mu_);
        clients_.erase(c.get());
        auto it = per_ip_.find(c->ip_);
        SPINDLE_ASSERT(it != per_ip_.end() && it->second > 0);  // counted when accepted
        if (--it->second == 0) per_ip_.erase(it);
      }
      sessions_.done();
    });
  }
  stopping_.store(true);
  std::vector<std::shared_ptr<client>> all;
  {
    std::lock_guard lock(conns_mu_);
    for (auto& [p, c] : clients_) all.push_back(c);
  }
  for (auto& c : all) c->kill("Server shutting down", /*discard=*/false);
  all.clear();
  sessions_.wait();
}

chat::stats server_impl::stats() {
  chat::stats s;
  {
    std::lock_guard lock(conns_mu_);
    s.clients = clients_.size();
    s.accepted = accepted_.load();
  }
  {
    std::shared_lock lock(state_mu_);
    s.channels = channels_.size();
  }
  s.registered = registered_.load();
  s.refused = refused_.load();
  s.sendq_exceeded = sendq_exceeded_.load();
  s.flood_kills = flood_kills_.load();
  s.ping_timeouts = ping_timeouts_.load();
  s.register_timeouts = register_timeouts_.load();
  return s;
}

}  // namespace detail

// ---- server ----

server::server(options opts) : impl_(std::make_unique<detail::server_impl>(std::move(opts))) {}
server::~server() = default;
void server::serve() { impl_->serve(); }
void server::stop() { impl_->stop(); }
spindle::address server::local_address() const { return impl_->listener_.local_address(); }
chat::stats server::stats() const { return impl_->stats(); }

}  // namespace chat
