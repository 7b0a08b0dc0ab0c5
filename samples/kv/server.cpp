// The key-value server (server.h): the accept loop, stop, the expiry
// fiber, and a session's loop. The commands are in commands.cpp.
//
// A session is one fiber, straight-line: read what the client sent, run
// every complete command in it (a pipelined batch), write the batch's
// replies with one write, and read again. While it writes it does not
// read, so a client that sends without reading is held back by its own
// unread replies; one that leaves its replies unread for
// options::write_timeout is dropped. Rejected: a writer fiber per client
// fed by a reply queue, as the chat sample has: a request/response
// protocol has nothing to send a client but answers to its own commands,
// and the second fiber would cost a switch per batch.
#include "samples/kv/server.h"

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fiber/fiber.h"
#include "samples/kv/detail/server_impl.h"

namespace kv {
namespace detail {
namespace {

// Bytes a session asks for in one read.
constexpr std::size_t read_size = 16 * 1024;
// Replies gathered while running a batch are written once they pass this
// size, before the rest of the batch runs: what waits for a client is
// bounded by it plus one reply.
constexpr std::size_t flush_size = 64 * 1024;
// Buffers grown past this by a big request or reply are given back after
// it, instead of staying that size for the rest of the connection.
constexpr std::size_t keep_capacity = 1024 * 1024;

}  // namespace

server_impl::server_impl(options o) : opts_(std::move(o)), listener_(spindle::listen(opts_.listen)) {}

void server_impl::stop() {
  if (stopping_.exchange(true)) return;
  std::error_code ignored;
  listener_.close(ignored);  // serve()'s accept wakes with operation_canceled
}

void server_impl::serve() {
  spindle::fiber expiry([this] {
    std::optional<int> nothing;
    while (expiry_stop_.recv_for(nothing, opts_.expire_period) == spindle::channel_status::timeout) {
      store_.expire_due();
    }
  });
  while (!stopping_.load()) {
    std::error_code ec;
    auto conn = std::make_shared<spindle::connection>(listener_.accept(ec));
    if (ec == std::errc::operation_canceled || ec == std::errc::bad_file_descriptor) break;
    if (ec) continue;  // the listener backs off by itself on EMFILE
    accepted_.fetch_add(1, std::memory_order_relaxed);
    bool refused = false;
    {
      std::lock_guard lock(conns_mu_);
      refused = conns_.size() >= opts_.max_clients;
      if (!refused) {
        conns_.insert(conn.get());
        clients_.store(conns_.size(), std::memory_order_relaxed);
      }
    }
    if (refused) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      std::error_code ignored;
      conn->write_all("-ERR max number of clients reached\r\n", std::chrono::milliseconds(100), ignored);
      conn->close(ignored);
      continue;
    }
    sessions_.add(1);
    spindle::go([this, conn = std::move(conn)] {
      session(*this, *conn).run();
      {
        std::lock_guard lock(conns_mu_);
        conns_.erase(conn.get());
        clients_.store(conns_.size(), std::memory_order_relaxed);
      }
      std::error_code ignored;
      conn->close(ignored);
      sessions_.done();
    });
  }
  stopping_.store(true);
  {
    // Each session's next read (or the read of BLPOP's watcher) sees the
    // end of the stream, and a write waiting on a client fails.
    std::lock_guard lock(conns_mu_);
    for (spindle::connection* c : conns_) {
      std::error_code ignored;
      c->shutdown(spindle::shutdown_type::both, ignored);
    }
  }
  sessions_.wait();
  expiry_stop_.close();
  expiry.join();
}

kv::stats server_impl::stats() {
  kv::stats s;
  s.clients = clients_.load(std::memory_order_relaxed);
  s.blocked = blocked_.load(std::memory_order_relaxed);
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  s.protocol_errors = protocol_errors_.load(std::memory_order_relaxed);
  s.write_timeouts = write_timeouts_.load(std::memory_order_relaxed);
  s.commands = commands_.load(std::memory_order_relaxed);
  return s;
}

void session::run() {
  request_parser parser(srv.opts_.limits);
  std::vector<std::string> args;
  std::string error;
  // Read into a buffer on the stack and append what came: growing `in`
  // by read_size for each read would zero 16 KiB where a request is a few
  // dozen bytes.
  char buf[read_size];
  while (!closing) {
    std::error_code ec;
    const std::size_t n = conn.read_some(std::span<char>(buf), ec);
    in.append(buf, n);
    if (n == 0 || ec || in.size() > max_query_buffer) break;
    std::size_t pos = 0;
    while (!closing) {
      const request_parser::status st = parser.parse(in, pos, args, error);
      if (st == request_parser::status::incomplete) break;
      if (st == request_parser::status::error) {
        // As Redis: the replies to the commands before it, the error, and
        // the connection is closed.
        srv.protocol_errors_.fetch_add(1, std::memory_order_relaxed);
        reply_error(out, error);
        closing = true;
        break;
      }
      execute(args);
      if (out.size() >= flush_size && !flush()) return;
    }
    in.erase(0, pos);
    if (in.capacity() > keep_capacity && in.size() < keep_capacity) in.shrink_to_fit();
    if (!flush()) return;
  }
}

bool session::flush() {
  if (out.empty()) return true;
  std::error_code ec;
  conn.write_all(out, srv.opts_.write_timeout, ec);
  if (out.capacity() > keep_capacity) {
    out = std::string();
  } else {
    out.clear();
  }
  if (ec == std::errc::timed_out) srv.write_timeouts_.fetch_add(1, std::memory_order_relaxed);
  return !ec;
}

}  // namespace detail

server::server(options opts) : impl_(std::make_unique<detail::server_impl>(std::move(opts))) {}
server::~server() = default;
void server::serve() { impl_->serve(); }
void server::stop() { impl_->stop(); }
spindle::address server::local_address() const { return impl_->listener_.local_address(); }
kv::stats server::stats() const { return impl_->stats(); }

}  // namespace kv
