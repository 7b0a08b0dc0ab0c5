// A connection of the chat server: class client, its send queue and the
// writer fiber that drains it, and the session fiber that reads its lines
// (server_impl::session), handing each to commands.cpp.
//
// The session reads lines and handles each command in turn,
// straight-line; the writer waits on the client's send queue and writes
// whatever is queued in one writev. Anyone (the client's own session,
// another client's session relaying a message, the server stopping)
// queues lines with send(), which never blocks: the queue is bounded in
// bytes, and a client whose queue overflows is disconnected on the spot,
// so a stalled reader costs the others nothing.
//
// The server's own long replies (WHO, NAMES, LIST, WHOIS, JOIN's NAMES,
// the welcome) would overflow that bound by themselves for a big enough
// channel, as if the client had flooded. So a session builds such a reply
// under the state lock (a consistent picture), starts it under that lock,
// and then, without it, queues the rest a piece at a time as the writer
// takes the queue below a mark (begin_reply/end_reply). Until the reply
// is all queued, lines others send the client wait behind it (held), so
// the reply reaches the client in one piece, as it did when it was queued
// at once; those held lines count against the bound, which therefore
// still disconnects a client that stops reading while others talk to it.
// Rejected: holding state_mu_ while the client drains (one slow reader
// would stall every NICK, JOIN and QUIT), and queueing a reply's pieces
// without holding others' lines back (a PART in the middle of a NAMES
// list leaves the client listing someone gone).
#include "samples/chat/detail/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <span>
#include <system_error>
#include <utility>

#include "fiber/assert.h"
#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "samples/chat/detail/server_impl.h"
#include "samples/chat/irc.h"

namespace chat::detail {
namespace {

// The host part of a prefix: the IP; an IPv6 one that starts with ':'
// would end the prefix early on the wire, so it gets a leading 0 (as
// ircd-hybrid and ngircd do).
std::string host_of(const std::string& ip) { return !ip.empty() && ip[0] == ':' ? "0" + ip : ip; }

}  // namespace

line_ptr make_line(std::string s) {
  if (s.size() > irc::max_line) {
    s.resize(irc::max_line - 2);
    s += "\r\n";
  }
  return std::make_shared<const std::string>(std::move(s));
}

client::client(server_impl& srv, spindle::connection conn, std::string ip)
    : srv_(srv), conn_(std::move(conn)), ip_(std::move(ip)), host_(host_of(ip_)) {}

void client::send(line_ptr line) {
  std::unique_lock lock(q_mu_);
  if (closing_) return;
  if (q_bytes_ + held_bytes_ + line->size() > srv_.opts_.send_queue_bytes) {
    srv_.sendq_exceeded_.fetch_add(1, std::memory_order_relaxed);
    kill_locked("SendQ exceeded", /*discard=*/true, lock);
    return;
  }
  if (replying_) {
    held_bytes_ += line->size();
    held_.push_back(std::move(line));
    return;
  }
  SPINDLE_ASSERT(held_.empty());  // held_ is empty unless replying_
  q_bytes_ += line->size();
  q_.push_back(std::move(line));
  if (q_.size() == 1) q_cv_.notify_one();
}

std::size_t client::high_mark() const {
  // Never less than a line of the longest kind, so that a piece always
  // fits (for a bound too small to be of use anyway).
  return std::max(srv_.opts_.send_queue_bytes / 2, 2 * irc::max_line);
}

void client::push_reply_locked(long_reply& r, bool at_least_one) {
  const bool was_empty = q_.empty();
  while (r.next < r.lines.size()) {
    const line_ptr& line = r.lines[r.next];
    if (q_bytes_ + line->size() > high_mark() && !at_least_one) break;
    at_least_one = false;
    q_bytes_ += line->size();
    q_.push_back(line);
    ++r.next;
  }
  if (was_empty && !q_.empty()) q_cv_.notify_one();
}

void client::begin_reply(long_reply& r) {
  std::lock_guard lock(q_mu_);
  if (closing_) return;
  push_reply_locked(r, /*at_least_one=*/false);
  if (r.next < r.lines.size()) replying_ = true;
}

void client::end_reply(long_reply& r) {
  std::unique_lock lock(q_mu_);
  // Fast path: all of it went in at once.
  if (!replying_) return;
  // How long the client may take nothing before it counts as gone.
  const auto patience = srv_.opts_.ping_interval + srv_.opts_.ping_timeout;
  while (!closing_ && r.next < r.lines.size()) {
    session_waiting_ = true;
    const bool drained = session_cv_.wait_until(lock, clock::now() + patience,
                                                [&] { return closing_ || q_bytes_ <= low_mark(); });
    session_waiting_ = false;
    if (closing_) return;  // kill() let the held lines go, or dropped them
    if (!drained) {
      srv_.ping_timeouts_.fetch_add(1, std::memory_order_relaxed);
      kill_locked("Ping timeout", /*discard=*/false, lock);
      return;
    }
    push_reply_locked(r, /*at_least_one=*/true);
  }
  // The reply is all in: the held lines follow it.
  replying_ = false;
  if (held_.empty()) return;
  const bool was_empty = q_.empty();
  q_bytes_ += held_bytes_;
  held_bytes_ = 0;
  std::move(held_.begin(), held_.end(), std::back_inserter(q_));
  held_.clear();
  if (was_empty) q_cv_.notify_one();
}

bool client::wait_killed_until(clock::time_point until) {
  std::unique_lock lock(q_mu_);
  session_cv_.wait_until(lock, until, [&] { return closing_; });
  return closing_;
}

void client::kill(std::string_view reason, bool discard) {
  std::unique_lock lock(q_mu_);
  kill_locked(reason, discard, lock);
}

void client::kill_locked(std::string_view reason, bool discard,
                         std::unique_lock<spindle::mutex>& lock) {
  if (closing_) return;
  closing_ = true;
  dead_.store(true, std::memory_order_relaxed);
  reason_ = std::string(reason);
  if (discard) {
    q_.clear();
    q_bytes_ = 0;
    discarded_ = true;
  } else {
    // Lines held behind a long reply cut short go before the ERROR.
    q_bytes_ += held_bytes_;
    std::move(held_.begin(), held_.end(), std::back_inserter(q_));
  }
  held_.clear();
  held_bytes_ = 0;
  replying_ = false;
  auto error = make_line(irc::cat("ERROR :", reason, "\r\n"));
  q_bytes_ += error->size();
  q_.push_back(std::move(error));
  q_cv_.notify_one();
  session_cv_.notify_one();  // from end_reply or a flood delay
  // Wake the session from its read, and the writer from a write that
  // waits for a client that does not read; the writer then gives its last
  // lines options::linger. Under q_mu_, so that the writer, which sets
  // that linger under q_mu_ once it sees closing_, always comes after.
  const auto now = clock::now();
  conn_.set_write_deadline(now);
  conn_.set_read_deadline(now);
  lock.unlock();
}

void client::write_loop() {
  // Lines taken from the queue and not yet written, the first perhaps
  // partly (`done` bytes of it).
  std::deque<line_ptr> batch;
  std::size_t done = 0;
  std::vector<iovec> iov;
  bool lingering = false;
  for (;;) {
    {
      std::unique_lock lock(q_mu_);
      if (batch.empty()) {
        q_cv_.wait(lock, [&] { return !q_.empty() || closing_; });
        if (q_.empty()) break;  // closing, and everything is written
      }
      if (closing_ && !lingering) {
        lingering = true;
        conn_.set_write_deadline(clock::now() + srv_.opts_.linger);
        if (discarded_) {
          // Only the rest of a line cut in the middle goes before the ERROR.
          if (done == 0) batch.clear();
          if (batch.size() > 1) batch.resize(1);
        }
      }
      // Up to 64 KiB at a time; what is taken no longer counts against
      // the send queue's bound.
      std::size_t bytes = 0;
      for (const auto& l : batch) bytes += l->size();
      while (!q_.empty() && bytes < 64 * 1024 && batch.size() < 1024) {
        bytes += q_.front()->size();
        q_bytes_ -= q_.front()->size();
        batch.push_back(std::move(q_.front()));
        q_.pop_front();
      }
      // Room for a long reply's next piece.
      if (session_waiting_ && q_bytes_ <= low_mark()) session_cv_.notify_one();
    }
    SPINDLE_ASSERT(!batch.empty());  // the wait above ends with lines, or breaks
    iov.clear();
    for (const auto& l : batch) iov.push_back({const_cast<char*>(l->data()), l->size()});
    iov[0].iov_base = static_cast<char*>(iov[0].iov_base) + done;
    iov[0].iov_len -= done;
    std::error_code ec;
    std::size_t n = conn_.write_all(std::span<const iovec>(iov), ec);
    n += done;
    while (!batch.empty() && n >= batch.front()->size()) {
      n -= batch.front()->size();
      batch.pop_front();
    }
    done = n;
    if (ec) {
      // A kill() cut the write short: go round once more, lingering.
      if (ec == std::errc::timed_out && !lingering && closing()) continue;
      // The peer is gone, or the linger ran out: nothing more can go.
      kill("Write error", /*discard=*/true);
      break;
    }
  }
  // No more writes: the session may still be reading; it closes.
  std::error_code ignored;
  conn_.shutdown(spindle::shutdown_type::write, ignored);
}

// ---- the session ----

namespace {

// While a flood delay waits with the session's input buffer full (so
// that it cannot read on to see the stream end), the session looks this
// often whether the client has hung up: a poll(2) four times a second,
// only for a client that is far over its rate.
constexpr auto hangup_check_interval = std::chrono::milliseconds(250);

// peer_hung_up(): the client has closed its connection (or shut its
// sending side), or the connection failed, even with input still unread.
bool peer_hung_up(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace

// What a session has read and not yet handled: lines are cut out of
// buf[begin, end).
struct input {
  std::array<char, 4096> buf;  // 8 lines of the longest kind
  std::size_t begin = 0;
  std::size_t end = 0;

  // compact() moves what is left to the front, to make room behind it.
  void compact() {
    std::memmove(buf.data(), buf.data() + begin, end - begin);
    end -= begin;
    begin = 0;
  }
  std::span<char> room() { return std::span<char>(buf.data() + end, buf.size() - end); }
};

void server_impl::session(const std::shared_ptr<client>& cp) {
  client& c = *cp;
  if (stopping_.load()) {
    c.kill("Server shutting down", false);
  }
  if (opts_.socket_send_buffer > 0) {
    const int size = static_cast<int>(std::min<std::size_t>(opts_.socket_send_buffer, 1 << 30));
    ::setsockopt(c.conn_.native_handle(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  c.flood_tokens_ = static_cast<double>(opts_.flood_burst);
  spindle::fiber writer([&c] { c.write_loop(); });
  const auto accepted_at = clock::now();

  // Lines are cut out of `in`; a line longer than max_line is dropped as
  // it comes (`overlong`), without ever holding more than the buffer.
  input in;
  bool overlong = false;
  std::string quit_reason;
  bool quit = false;
  while (!quit) {
    // The read's deadline: registration, or the idle ping and its timeout.
    clock::time_point until;
    if (!c.registered_) {
      until = accepted_at + opts_.register_timeout;
    } else if (c.ping_sent_) {
      until = c.last_activity_ + opts_.ping_interval + opts_.ping_timeout;
    } else {
      until = c.last_activity_ + opts_.ping_interval;
    }
    if (in.begin == in.end) in.begin = in.end = 0;
    if (in.end == in.buf.size()) in.compact();
    std::error_code ec;
    const std::size_t asked = in.room().size();
    const std::size_t n = c.conn_.read_some(in.room(), until, ec);
    if (ec == std::errc::timed_out) {
      if (c.closing()) break;  // kill() woke us
      if (clock::now() < until) continue;  // a kill's deadline that was taken back? retry
      if (!c.registered_) {
        register_timeouts_.fetch_add(1, std::memory_order_relaxed);
        c.kill("Registration timed out", false);
        break;
      }
      if (c.ping_sent_) {
        ping_timeouts_.fetch_add(1, std::memory_order_relaxed);
        quit_reason = "Ping timeout";
        c.kill(quit_reason, false);
        break;
      }
      c.ping_sent_ = true;
      c.send(irc::cat("PING :", opts_.server_name, "\r\n"));
      continue;
    }
    if (ec || n == 0) {
      if (!c.closing()) quit_reason = ec ? "Connection reset by peer" : "Client closed connection";
      break;
    }
    in.end += n;
    c.last_activity_ = clock::now();
    c.ping_sent_ = false;
    // Every complete line in the buffer.
    while (!quit) {
      const char* data = in.buf.data() + in.begin;
      const auto* lf = static_cast<const char*>(std::memchr(data, '\n', in.end - in.begin));
      if (lf == nullptr) {
        if (in.end - in.begin >= irc::max_line) {
          // Part of an overlong line: drop what we have of it.
          if (!overlong) reply(c, "417", ":Input line was too long");
          overlong = true;
          in.begin = in.end;
        }
        break;
      }
      const auto length = static_cast<std::size_t>(lf - data);
      if (overlong) {  // the end of a line already dropped
        in.begin += length + 1;
        overlong = false;
        continue;
      }
      // Empty and overlong lines count against the flood limit too. The
      // wait may read more input, and move what the buffer holds.
      if (!flood_wait(c, in, quit_reason)) {
        quit = true;
        break;
      }
      std::string_view line(in.buf.data() + in.begin, length);
      in.begin += length + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() + 2 > irc::max_line) {  // with CR LF, over 512
        reply(c, "417", ":Input line was too long");
        continue;
      }
      // A CR inside a line ends it as well: relayed, it would let a client
      // that splits lines at CR show what follows as a line of its own
      // (a forged server line, say).
      while (!quit && !line.empty()) {
        const std::size_t cr = line.find('\r');
        const std::string_view piece = line.substr(0, cr);
        line.remove_prefix(cr == std::string_view::npos ? line.size() : cr + 1);
        // Lines already read from a client being disconnected are not
        // handled (a wrong PASS followed by a right one, say).
        if (c.dead_.load(std::memory_order_relaxed)) {
          quit = true;
        } else if (!piece.empty() && !handle(c, piece)) {
          quit = true;
        }
      }
    }
    // Fibers are not preempted: a client that keeps the socket full (the
    // read filled all it was given) would otherwise keep its worker from
    // everyone else.
    if (n == asked && !quit) spindle::this_fiber::yield();
    if (c.closing()) break;
  }
  if (quit_reason.empty()) quit_reason = c.close_reason();
  if (quit_reason.empty()) quit_reason = "Client Quit";
  unregister(c, quit_reason);
  c.kill(quit_reason, false);  // if not already: ends the writer
  writer.join();
  std::error_code ignored;
  c.conn_.close(ignored);
}

bool server_impl::flood_wait(client& c, input& in, std::string& gone) {
  if (opts_.flood_rate <= 0) return true;
  const auto now = clock::now();
  const double burst = static_cast<double>(opts_.flood_burst);
  c.flood_tokens_ = std::min(
      burst, c.flood_tokens_ + std::chrono::duration<double>(now - c.flood_last_).count() *
                                   opts_.flood_rate);
  c.flood_last_ = now;
  // Fast path: a token is there.
  if (c.flood_tokens_ >= 1) {
    c.flood_tokens_ -= 1;
    c.flood_delayed_ = 0;
    return true;
  }
  if (++c.flood_delayed_ > opts_.flood_max_delayed) {
    flood_kills_.fetch_add(1, std::memory_order_relaxed);
    c.kill("Excess Flood", /*discard=*/false);
    return false;
  }
  // Slow path: wait for the token this line needs. Not asleep: reading
  // on, into the room left in the buffer, so that the client closing its
  // connection ends the wait (and the session) at once; and kill() (the
  // server stopping, a SendQ overflow) cuts the read short. With no room
  // left, wait for kill() alone, looking now and then for a hang-up.
  const auto wake = now + std::chrono::ceil<clock::duration>(
                              std::chrono::duration<double>((1 - c.flood_tokens_) / opts_.flood_rate));
  for (;;) {
    if (c.closing()) return false;
    const auto t = clock::now();
    if (t >= wake) break;
    if (in.end == in.buf.size() && in.begin > 0) in.compact();
    if (in.end < in.buf.size()) {
      std::error_code ec;
      const std::size_t n = c.conn_.read_some(in.room(), wake, ec);
      if (ec == std::errc::timed_out) continue;
      if (ec || n == 0) {
        gone = ec ? "Connection reset by peer" : "Client closed connection";
        return false;
      }
      in.end += n;
      c.last_activity_ = clock::now();
      c.ping_sent_ = false;
      continue;
    }
    if (c.wait_killed_until(std::min(wake, t + hangup_check_interval))) return false;
    if (peer_hung_up(c.conn_.native_handle())) {
      gone = "Client closed connection";
      return false;
    }
  }
  c.flood_tokens_ = 0;
  c.flood_last_ = clock::now();
  return true;
}

}  // namespace chat::detail
