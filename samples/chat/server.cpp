// The chat server. How it is put together:
//
// Each connection is a `client` served by two fibers. The session fiber
// reads lines and handles each command in turn, straight-line; the writer
// fiber waits on the client's send queue and writes whatever is queued in
// one writev. Anyone (the client's own session, another client's session
// relaying a message, the server stopping) queues lines with send(), which
// never blocks: the queue is bounded in bytes, and a client whose queue
// overflows is disconnected on the spot, so a stalled reader costs the
// others nothing.
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
//
// Shared state (nicknames, channels and their members, topics) sits under
// one spindle::shared_mutex: commands that change it (NICK, JOIN, PART,
// TOPIC, QUIT) take it exclusively, and the frequent ones that only read
// it (PRIVMSG, NOTICE, NAMES, WHO, LIST) take it shared, so messages from
// different clients are relayed in parallel on different workers. Order:
// a client's session handles its lines one after another and queues each
// relayed line to every member before reading the next, and each queue is
// FIFO, so every member receives a sender's messages in the order sent.
// Lock order: state_mu_, then a client's queue mutex, never the reverse.
#include "samples/chat/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <iterator>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/conn.h"
#include "io/error.h"
#include "io/listener.h"
#include "samples/chat/irc.h"
#include "sched/spawn.h"
#include "sync/condition_variable.h"
#include "sync/mutex.h"
#include "sync/shared_mutex.h"
#include "sync/wait_group.h"

namespace chat {
namespace {

using clock = std::chrono::steady_clock;
using line_ptr = std::shared_ptr<const std::string>;

constexpr std::string_view version = "spindle-chat-0.1";
constexpr std::size_t max_user = 10;
constexpr std::size_t max_topic = 390;
constexpr std::size_t max_channels_per_client = 50;

// Every line the server sends goes through here, and none is longer than
// 512 bytes, CR LF included (RFC 1459 2.3): a reply that echoes a long
// parameter (a PONG's token, a 421's command, a long real name or reason)
// is cut, keeping its CR LF.
line_ptr make_line(std::string s) {
  if (s.size() > irc::max_line) {
    s.resize(irc::max_line - 2);
    s += "\r\n";
  }
  return std::make_shared<const std::string>(std::move(s));
}

// The host part of a prefix: the IP; an IPv6 one that starts with ':'
// would end the prefix early on the wire, so it gets a leading 0 (as
// ircd-hybrid and ngircd do).
std::string host_of(const std::string& ip) { return !ip.empty() && ip[0] == ':' ? "0" + ip : ip; }

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

// A reply of many lines, built under state_mu_ and then queued as the
// client drains it (client::begin_reply, client::end_reply).
struct long_reply {
  std::vector<line_ptr> lines;
  std::size_t next = 0;  // lines[next] is the first not yet queued
};

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

class client;

struct channel {
  std::string name;  // as its creator spelled it
  std::string topic;
  std::string topic_who;
  std::int64_t topic_time = 0;
  std::int64_t created = 0;
  std::vector<client*> members;  // in the order they joined
};

// One connection. Identity and memberships are guarded by the server's
// state_mu_ (written under it exclusively, by this client's session
// only); the send queue by q_mu_.
class client {
 public:
  client(server::impl& srv, spindle::connection conn, std::string ip)
      : srv_(srv), conn_(std::move(conn)), ip_(std::move(ip)), host_(host_of(ip_)) {}

  server::impl& srv_;
  spindle::connection conn_;
  const std::string ip_;
  const std::string host_;

  // ---- identity: state_mu_ ----
  std::string nick_;  // empty until a valid NICK
  std::string user_;
  std::string realname_;
  std::string prefix_;  // "nick!user@host", once registered
  std::string away_;    // the AWAY message; empty when here
  bool registered_ = false;
  std::vector<channel*> channels_;

  // ---- session-only ----
  std::string pass_;
  bool cap_negotiating_ = false;
  clock::time_point last_activity_ = clock::now();
  bool ping_sent_ = false;
  double flood_tokens_ = 0;
  clock::time_point flood_last_ = clock::now();
  std::size_t flood_delayed_ = 0;

  // Queues a line (CR LF included) for the writer, or, while a long reply
  // is being queued, holds it until the reply is all in. Never blocks;
  // over the send queue's bound (held lines included), disconnects the
  // client instead.
  void send(line_ptr line);
  void send(std::string line) { send(make_line(std::move(line))); }
  // begin_reply() starts a long reply: queues what of it fits under the
  // high mark now, and holds lines from others from now on until
  // end_reply(). From the client's session, under state_mu_ (the one the
  // reply was built under), so that nothing sent after the reply's
  // picture was taken comes before it.
  void begin_reply(long_reply& r);
  // end_reply() queues the rest of the reply a piece at a time, each once
  // the writer has taken the queue below the low mark, then lets the held
  // lines go. Returns early if the client is disconnected meanwhile; a
  // client that takes nothing for ping_interval + ping_timeout is
  // disconnected ("Ping timeout": its session, waiting here, cannot ping
  // it). From the client's session, without state_mu_.
  void end_reply(long_reply& r);
  // wait_killed_until() waits until kill() or `until`; true if killed.
  // From the client's session.
  bool wait_killed_until(clock::time_point until);
  // kill() disconnects: the queue's last line becomes "ERROR :<reason>"
  // (after what is queued, or instead of it when `discard`), the writer
  // ends after writing it (within options::linger), and the session wakes
  // from its read and ends. Idempotent; any fiber.
  void kill(std::string_view reason, bool discard);
  bool closing() {
    std::lock_guard lock(q_mu_);
    return closing_;
  }
  std::string close_reason() {
    std::lock_guard lock(q_mu_);
    return reason_;
  }
  // The writer fiber's body.
  void write_loop();

 private:
  void kill_locked(std::string_view reason, bool discard, std::unique_lock<spindle::mutex>& lock);
  // Queues lines of `r` while they keep the queue within the high mark;
  // at least one if `at_least_one`.
  void push_reply_locked(long_reply& r, bool at_least_one);
  // A long reply goes in while the queue holds at most the high mark, and
  // its next piece once the writer has taken the queue below the low
  // mark: it never takes more than half of the bound, which leaves the
  // other half to lines held meanwhile, and the writer finds the next
  // piece waiting when it comes back for more.
  std::size_t high_mark() const;
  std::size_t low_mark() const { return high_mark() / 2; }

  spindle::mutex q_mu_;
  spindle::condition_variable q_cv_;        // the writer waits here
  spindle::condition_variable session_cv_;  // the session waits here (end_reply, flood delay)
  std::deque<line_ptr> q_;  // q_mu_: for the writer
  std::size_t q_bytes_ = 0;  // q_mu_: bytes in q_ (taken by the writer: no longer counted)
  // Invariant: held_ is empty unless replying_.
  std::deque<line_ptr> held_;    // q_mu_: others' lines held behind a long reply
  std::size_t held_bytes_ = 0;   // q_mu_
  bool replying_ = false;        // q_mu_: between begin_reply and end_reply, if not killed
  bool session_waiting_ = false; // q_mu_: end_reply waits for the writer
  bool closing_ = false;     // q_mu_
 public:
  // closing_, readable without the lock (the session checks it per line).
  std::atomic<bool> dead_{false};

 private:
  bool discarded_ = false;   // q_mu_: kill() dropped what was queued
  std::string reason_;       // q_mu_
};

class server::impl {
 public:
  explicit impl(options o);

  void serve();
  void stop();
  chat::stats stats();

  const options opts_;
  spindle::listener listener_;
  std::atomic<bool> stopping_{false};
  const std::string created_;

  // ---- shared state ----
  spindle::shared_mutex state_mu_;
  absl::flat_hash_map<std::string, client*> nicks_;  // folded nick -> its client
  absl::flat_hash_map<std::string, std::unique_ptr<channel>> channels_;  // folded name

  // ---- connections ----
  spindle::mutex conns_mu_;
  absl::flat_hash_map<client*, std::shared_ptr<client>> clients_;  // conns_mu_
  absl::flat_hash_map<std::string, std::size_t> per_ip_;           // conns_mu_
  spindle::wait_group sessions_;

  std::atomic<std::uint64_t> accepted_{0}, refused_{0}, sendq_exceeded_{0}, flood_kills_{0},
      ping_timeouts_{0}, register_timeouts_{0};
  std::atomic<std::size_t> registered_{0};

  // ---- a session ----
  void session(const std::shared_ptr<client>& c);
  // Handles one line; false when the session should end (QUIT).
  bool handle(client& c, std::string_view line);
  // flood_wait() takes the flood limit's token for the next line, waiting
  // for it if need be (reading on meanwhile). False when the session
  // should end: the client was disconnected, or it closed its connection
  // (then `gone` says how).
  bool flood_wait(client& c, input& in, std::string& gone);
  void try_register(client& c);
  void unregister(client& c, std::string_view reason);

  // ---- commands ----
  void cmd_pass(client& c, const irc::message& m);
  void cmd_nick(client& c, const irc::message& m);
  void cmd_user(client& c, const irc::message& m);
  void cmd_cap(client& c, const irc::message& m);
  void cmd_join(client& c, const irc::message& m);
  void cmd_part(client& c, const irc::message& m);
  void cmd_privmsg(client& c, const irc::message& m, bool notice);
  void cmd_topic(client& c, const irc::message& m);
  void cmd_names(client& c, const irc::message& m);
  void cmd_list(client& c, const irc::message& m);
  void cmd_who(client& c, const irc::message& m);
  void cmd_whois(client& c, const irc::message& m);
  void cmd_mode(client& c, const irc::message& m);
  void cmd_ison_userhost(client& c, const irc::message& m);

  // ---- replies ----
  // ":server NNN target rest\r\n", target the client's nick or "*". Under
  // state_mu_ (either way) or from the client's own session.
  std::string numeric(const client& c, std::string_view num, std::string_view rest) const {
    return irc::cat(":", opts_.server_name, " ", num, " ",
                        c.nick_.empty() ? std::string_view("*") : std::string_view(c.nick_), " ",
                        rest, "\r\n");
  }
  void reply(client& c, std::string_view num, std::string_view rest) { c.send(numeric(c, num, rest)); }
  // The same, as the next line of a long reply.
  void reply(long_reply& r, const client& c, std::string_view num, std::string_view rest) const {
    r.lines.push_back(make_line(numeric(c, num, rest)));
  }
  // send_reply() sends the long reply `r`, built under `lock` (a lock of
  // state_mu_, either way), which it releases before waiting for the
  // client to read (see client::begin_reply).
  template <class Lock>
  void send_reply(client& c, long_reply& r, Lock& lock) {
    c.begin_reply(r);
    lock.unlock();
    c.end_reply(r);
  }
  void send_names(long_reply& r, const client& c, const channel& ch) const;  // state_mu_ held
  void part_locked(client& c, channel* ch, const line_ptr& line);  // state_mu_ exclusive
  channel* find_channel(std::string_view name) const {
    auto it = channels_.find(irc::fold(name));
    return it == channels_.end() ? nullptr : it->second.get();
  }
  client* find_nick(std::string_view nick) const {
    auto it = nicks_.find(irc::fold(nick));
    return it == nicks_.end() || !it->second->registered_ ? nullptr : it->second;
  }
};

// ---- client ----

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

// ---- server::impl ----

namespace {
std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a %b %d %Y at %H:%M:%S UTC", &tm);
  return buf;
}
std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }
}  // namespace

server::impl::impl(options o)
    : opts_(std::move(o)), listener_(spindle::listen(opts_.listen)), created_(now_text()) {}

void server::impl::stop() {
  if (stopping_.exchange(true)) return;
  std::error_code ignored;
  listener_.close(ignored);  // serve()'s accept wakes with operation_canceled
}

void server::impl::serve() {
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

chat::stats server::impl::stats() {
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

void server::impl::session(const std::shared_ptr<client>& cp) {
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

bool server::impl::flood_wait(client& c, input& in, std::string& gone) {
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

bool server::impl::handle(client& c, std::string_view line) {
  // NUL bytes are dropped; other bytes pass through untouched.
  std::string clean;
  if (line.find('\0') != std::string_view::npos) {
    for (char ch : line) {
      if (ch != '\0') clean += ch;
    }
    line = clean;
  }
  irc::message m;
  if (!irc::parse(line, m)) return true;
  const std::string& cmd = m.command;
  // Allowed before registration.
  if (cmd == "PING") {
    if (m.params.empty()) {
      reply(c, "409", ":No origin specified");
    } else {
      c.send(irc::cat(":", opts_.server_name, " PONG ", opts_.server_name, " :", m.params[0],
                          "\r\n"));
    }
    return true;
  }
  if (cmd == "PONG") return true;
  if (cmd == "QUIT") {
    const std::string reason =
        m.params.empty() || m.params[0].empty() ? "Client Quit" : irc::cat("Quit: ", m.params[0]);
    unregister(c, reason);
    c.kill(irc::cat("Closing Link: ", c.host_, " (", reason, ")"), false);
    return false;
  }
  if (cmd == "PASS") return cmd_pass(c, m), true;
  if (cmd == "NICK") return cmd_nick(c, m), true;
  if (cmd == "USER") return cmd_user(c, m), true;
  if (cmd == "CAP") return cmd_cap(c, m), true;
  static const absl::flat_hash_set<std::string_view> after_registration = {
      "JOIN", "PART", "PRIVMSG", "NOTICE", "TOPIC", "NAMES", "LIST", "WHO", "WHOIS", "WHOWAS",
      "MODE", "ISON", "USERHOST", "AWAY"};
  const bool known = after_registration.contains(cmd);
  if (!c.registered_) {
    if (known) {
      reply(c, "451", ":You have not registered");
    } else {
      reply(c, "421", irc::cat(cmd, " :Unknown command"));
    }
    return true;
  }
  if (cmd == "PRIVMSG") {
    cmd_privmsg(c, m, false);
  } else if (cmd == "NOTICE") {
    cmd_privmsg(c, m, true);
  } else if (cmd == "JOIN") {
    cmd_join(c, m);
  } else if (cmd == "PART") {
    cmd_part(c, m);
  } else if (cmd == "TOPIC") {
    cmd_topic(c, m);
  } else if (cmd == "NAMES") {
    cmd_names(c, m);
  } else if (cmd == "LIST") {
    cmd_list(c, m);
  } else if (cmd == "WHO") {
    cmd_who(c, m);
  } else if (cmd == "WHOIS") {
    cmd_whois(c, m);
  } else if (cmd == "MODE") {
    cmd_mode(c, m);
  } else if (cmd == "WHOWAS") {
    // No history is kept: every nick "was no such nickname".
    if (m.params.empty()) return reply(c, "431", ":No nickname given"), true;
    reply(c, "406", irc::cat(m.params[0], " :There was no such nickname"));
    reply(c, "369", irc::cat(m.params[0], " :End of WHOWAS"));
  } else if (cmd == "ISON" || cmd == "USERHOST") {
    cmd_ison_userhost(c, m);
  } else if (cmd == "AWAY") {
    std::lock_guard lock(state_mu_);
    c.away_ = m.params.empty() ? "" : m.params[0];
    if (c.away_.empty()) {
      reply(c, "305", ":You are no longer marked as being away");
    } else {
      reply(c, "306", ":You have been marked as being away");
    }
  } else {
    reply(c, "421", irc::cat(cmd, " :Unknown command"));
  }
  return true;
}

void server::impl::cmd_pass(client& c, const irc::message& m) {
  if (c.registered_) return reply(c, "462", ":You may not reregister");
  if (m.params.empty()) return reply(c, "461", "PASS :Not enough parameters");
  c.pass_ = m.params[0];
}

void server::impl::cmd_user(client& c, const irc::message& m) {
  if (c.registered_) return reply(c, "462", ":You may not reregister");
  if (m.params.size() < 4 || m.params[0].empty()) {
    return reply(c, "461", "USER :Not enough parameters");
  }
  std::string user = m.params[0].substr(0, max_user);
  for (char& ch : user) {
    if (ch == '@' || ch == '!' || static_cast<unsigned char>(ch) <= ' ') ch = '_';
  }
  {
    std::lock_guard lock(state_mu_);
    c.user_ = "~" + user;  // no ident lookup: '~' as servers mark it
    c.realname_ = m.params[3];
  }
  try_register(c);
}

void server::impl::cmd_cap(client& c, const irc::message& m) {
  if (m.params.empty()) return reply(c, "461", "CAP :Not enough parameters");
  std::string sub = m.params[0];
  for (char& ch : sub) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::string_view target = c.nick_.empty() ? std::string_view("*") : c.nick_;
  if (sub == "LS") {
    if (!c.registered_) c.cap_negotiating_ = true;
    c.send(irc::cat(":", opts_.server_name, " CAP ", target, " LS :\r\n"));
  } else if (sub == "LIST") {
    c.send(irc::cat(":", opts_.server_name, " CAP ", target, " LIST :\r\n"));
  } else if (sub == "REQ") {
    if (!c.registered_) c.cap_negotiating_ = true;
    c.send(irc::cat(":", opts_.server_name, " CAP ", target, " NAK :",
                        m.params.size() > 1 ? m.params[1] : "", "\r\n"));
  } else if (sub == "END") {
    c.cap_negotiating_ = false;
    try_register(c);
  } else {
    reply(c, "410", irc::cat(m.params[0], " :Invalid CAP command"));
  }
}

void server::impl::cmd_nick(client& c, const irc::message& m) {
  if (m.params.empty() || m.params[0].empty()) return reply(c, "431", ":No nickname given");
  const std::string& nick = m.params[0];
  if (!irc::is_valid_nick(nick)) return reply(c, "432", irc::cat(nick, " :Erroneous nickname"));
  const std::string key = irc::fold(nick);
  std::unique_lock lock(state_mu_);
  auto it = nicks_.find(key);
  if (it != nicks_.end() && it->second != &c) {
    lock.unlock();
    return reply(c, "433", irc::cat(nick, " :Nickname is already in use"));
  }
  if (nick == c.nick_) return;
  if (!c.nick_.empty() && it == nicks_.end()) nicks_.erase(irc::fold(c.nick_));
  nicks_[key] = &c;
  if (!c.registered_) {
    c.nick_ = nick;
    lock.unlock();
    try_register(c);
    return;
  }
  // A change: the client and everyone sharing a channel with it hear of
  // it, each once.
  auto line = make_line(irc::cat(":", c.prefix_, " NICK :", nick, "\r\n"));
  absl::flat_hash_set<client*> peers = {&c};
  for (channel* ch : c.channels_) peers.insert(ch->members.begin(), ch->members.end());
  for (client* p : peers) p->send(line);
  c.nick_ = nick;
  c.prefix_ = irc::cat(c.nick_, "!", c.user_, "@", c.host_);
}

void server::impl::try_register(client& c) {
  if (c.registered_ || c.nick_.empty() || c.user_.empty() || c.cap_negotiating_) return;
  if (!opts_.password.empty() && c.pass_ != opts_.password) {
    reply(c, "464", ":Password incorrect");
    c.kill("Password incorrect", false);
    return;
  }
  // The welcome (a long reply: the MOTD may be long) starts under the
  // lock that makes the client findable, so that nothing sent to the new
  // nick can come before 001.
  long_reply r;
  std::unique_lock lock(state_mu_);
  c.registered_ = true;
  c.prefix_ = irc::cat(c.nick_, "!", c.user_, "@", c.host_);
  registered_.fetch_add(1, std::memory_order_relaxed);
  reply(r, c, "001", irc::cat(":Welcome to the ", opts_.network, " IRC Network ", c.prefix_));
  reply(r, c, "002", irc::cat(":Your host is ", opts_.server_name, ", running version ", version));
  reply(r, c, "003", irc::cat(":This server was created ", created_));
  reply(r, c, "004", irc::cat(opts_.server_name, " ", version, " iow n"));
  reply(r, c, "005", irc::cat("CASEMAPPING=rfc1459 CHANTYPES=# CHANMODES=,,,n PREFIX=() NICKLEN=",
                              irc::max_nick, " CHANNELLEN=", irc::max_channel, " TOPICLEN=",
                              max_topic, " CHANLIMIT=#:", max_channels_per_client,
                              " NETWORK=", opts_.network, " :are supported by this server"));
  if (opts_.motd.empty()) {
    reply(r, c, "422", ":MOTD File is missing");
  } else {
    reply(r, c, "375", irc::cat(":- ", opts_.server_name, " Message of the day - "));
    std::string_view motd = opts_.motd;
    while (!motd.empty()) {
      const std::size_t nl = motd.find('\n');
      reply(r, c, "372", irc::cat(":- ", motd.substr(0, nl)));
      if (nl == std::string_view::npos) break;
      motd.remove_prefix(nl + 1);
    }
    reply(r, c, "376", ":End of MOTD command");
  }
  send_reply(c, r, lock);
}

void server::impl::unregister(client& c, std::string_view reason) {
  std::lock_guard lock(state_mu_);
  if (!c.nick_.empty()) {
    auto it = nicks_.find(irc::fold(c.nick_));
    if (it != nicks_.end() && it->second == &c) nicks_.erase(it);
  }
  if (!c.registered_) return;
  c.registered_ = false;
  registered_.fetch_sub(1, std::memory_order_relaxed);
  auto line = make_line(irc::cat(":", c.prefix_, " QUIT :", reason, "\r\n"));
  absl::flat_hash_set<client*> peers;
  for (channel* ch : c.channels_) {
    for (client* p : ch->members) {
      if (p != &c) peers.insert(p);
    }
  }
  for (client* p : peers) p->send(line);
  const std::vector<channel*> mine = std::move(c.channels_);
  for (channel* ch : mine) part_locked(c, ch, nullptr);
}

void server::impl::part_locked(client& c, channel* ch, const line_ptr& line) {
  if (line) {
    for (client* p : ch->members) p->send(line);
  }
  std::erase(ch->members, &c);
  std::erase(c.channels_, ch);
  if (ch->members.empty()) channels_.erase(irc::fold(ch->name));
}

void server::impl::send_names(long_reply& r, const client& c, const channel& ch) const {
  // 353 lines of as many names as fit in 512 bytes.
  const std::string head = irc::cat("= ", ch.name, " :");
  const std::size_t room = irc::max_line - 2 - opts_.server_name.size() - c.nick_.size() - 10 -
                           head.size();
  std::string names;
  for (const client* p : ch.members) {
    if (!names.empty() && names.size() + 1 + p->nick_.size() > room) {
      reply(r, c, "353", irc::cat(head, names));
      names.clear();
    }
    if (!names.empty()) names += ' ';
    names += p->nick_;
  }
  if (!names.empty()) reply(r, c, "353", irc::cat(head, names));
  reply(r, c, "366", irc::cat(ch.name, " :End of NAMES list"));
}

void server::impl::cmd_join(client& c, const irc::message& m) {
  // A list with no names in it (",,,") is no parameter either (RFC 2812
  // 3.2.1 requires a channel), as for PRIVMSG's 411.
  const std::vector<std::string_view> names =
      m.params.empty() ? std::vector<std::string_view>() : irc::split_list(m.params[0]);
  if (names.empty()) return reply(c, "461", "JOIN :Not enough parameters");
  if (m.params[0] == "0") {  // leave every channel
    std::lock_guard lock(state_mu_);
    const std::vector<channel*> mine = c.channels_;
    for (channel* ch : mine) {
      part_locked(c, ch, make_line(irc::cat(":", c.prefix_, " PART ", ch->name, " :Left all channels\r\n")));
    }
    return;
  }
  for (std::string_view name : names) {
    if (!irc::is_valid_channel(name)) {
      reply(c, "403", irc::cat(name, " :No such channel"));
      continue;
    }
    std::unique_lock lock(state_mu_);
    const std::string key = irc::fold(name);
    auto& slot = channels_[key];
    if (!slot) {
      slot = std::make_unique<channel>();
      slot->name = std::string(name);
      slot->created = unix_now();
    }
    channel* ch = slot.get();
    if (std::find(c.channels_.begin(), c.channels_.end(), ch) != c.channels_.end()) continue;
    if (c.channels_.size() >= max_channels_per_client) {
      if (ch->members.empty()) channels_.erase(key);
      reply(c, "405", irc::cat(name, " :You have joined too many channels"));
      continue;
    }
    ch->members.push_back(&c);
    c.channels_.push_back(ch);
    auto line = make_line(irc::cat(":", c.prefix_, " JOIN ", ch->name, "\r\n"));
    for (client* p : ch->members) p->send(line);
    long_reply r;
    if (ch->topic.empty()) {
      reply(r, c, "331", irc::cat(ch->name, " :No topic is set"));
    } else {
      reply(r, c, "332", irc::cat(ch->name, " :", ch->topic));
      reply(r, c, "333", irc::cat(ch->name, " ", ch->topic_who, " ", ch->topic_time));
    }
    send_names(r, c, *ch);
    send_reply(c, r, lock);
  }
}

void server::impl::cmd_part(client& c, const irc::message& m) {
  const std::vector<std::string_view> names =
      m.params.empty() ? std::vector<std::string_view>() : irc::split_list(m.params[0]);
  if (names.empty()) return reply(c, "461", "PART :Not enough parameters");
  for (std::string_view name : names) {
    std::lock_guard lock(state_mu_);
    channel* ch = find_channel(name);
    if (ch == nullptr) {
      reply(c, "403", irc::cat(name, " :No such channel"));
      continue;
    }
    if (std::find(c.channels_.begin(), c.channels_.end(), ch) == c.channels_.end()) {
      reply(c, "442", irc::cat(ch->name, " :You're not on that channel"));
      continue;
    }
    auto line = make_line(m.params.size() > 1
                              ? irc::cat(":", c.prefix_, " PART ", ch->name, " :", m.params[1], "\r\n")
                              : irc::cat(":", c.prefix_, " PART ", ch->name, "\r\n"));
    part_locked(c, ch, line);
  }
}

void server::impl::cmd_privmsg(client& c, const irc::message& m, bool notice) {
  const std::string_view cmd = notice ? "NOTICE" : "PRIVMSG";
  // NOTICE never gets an automatic reply (RFC 2812 3.3.2). A target list
  // with no names in it (",,,") is no recipient (411) too: ngircd and
  // ircd-hybrid say nothing to it, but RFC 2812 3.3.1 has 411 for it.
  const std::vector<std::string_view> targets =
      m.params.empty() ? std::vector<std::string_view>() : irc::split_list(m.params[0]);
  if (targets.empty()) {
    if (!notice) reply(c, "411", irc::cat(":No recipient given (", cmd, ")"));
    return;
  }
  if (m.params.size() < 2 || m.params[1].empty()) {
    if (!notice) reply(c, "412", ":No text to send");
    return;
  }
  std::shared_lock lock(state_mu_);
  absl::flat_hash_set<std::string> seen;  // "PRIVMSG a,a" delivers once
  for (std::string_view target : targets) {
    if (!seen.insert(irc::fold(target)).second) continue;
    std::string head = irc::cat(":", c.prefix_, " ", cmd, " ");
    if (target[0] == '#') {
      channel* ch = find_channel(target);
      if (ch == nullptr) {
        if (!notice) reply(c, "403", irc::cat(target, " :No such channel"));
        continue;
      }
      if (std::find(c.channels_.begin(), c.channels_.end(), ch) == c.channels_.end()) {
        if (!notice) reply(c, "404", irc::cat(ch->name, " :Cannot send to channel"));
        continue;
      }
      // Relayed lines keep within 512 bytes: the text is cut if need be.
      head += irc::cat(ch->name, " :");
      std::string_view text = m.params[1];
      if (head.size() + text.size() + 2 > irc::max_line) text = text.substr(0, irc::max_line - 2 - head.size());
      auto line = make_line(irc::cat(head, text, "\r\n"));
      for (client* p : ch->members) {
        if (p != &c) p->send(line);
      }
    } else {
      client* to = find_nick(target);
      if (to == nullptr) {
        if (!notice) reply(c, "401", irc::cat(target, " :No such nick/channel"));
        continue;
      }
      if (!notice && !to->away_.empty()) reply(c, "301", irc::cat(to->nick_, " :", to->away_));
      head += irc::cat(to->nick_, " :");
      std::string_view text = m.params[1];
      if (head.size() + text.size() + 2 > irc::max_line) text = text.substr(0, irc::max_line - 2 - head.size());
      to->send(irc::cat(head, text, "\r\n"));
    }
  }
}

void server::impl::cmd_topic(client& c, const irc::message& m) {
  if (m.params.empty()) return reply(c, "461", "TOPIC :Not enough parameters");
  std::lock_guard lock(state_mu_);
  channel* ch = find_channel(m.params[0]);
  if (ch == nullptr) return reply(c, "403", irc::cat(m.params[0], " :No such channel"));
  const bool member = std::find(c.channels_.begin(), c.channels_.end(), ch) != c.channels_.end();
  if (m.params.size() < 2) {
    if (ch->topic.empty()) return reply(c, "331", irc::cat(ch->name, " :No topic is set"));
    reply(c, "332", irc::cat(ch->name, " :", ch->topic));
    return reply(c, "333", irc::cat(ch->name, " ", ch->topic_who, " ", ch->topic_time));
  }
  if (!member) return reply(c, "442", irc::cat(ch->name, " :You're not on that channel"));
  ch->topic = m.params[1].substr(0, max_topic);
  ch->topic_who = c.nick_;
  ch->topic_time = unix_now();
  auto line = make_line(irc::cat(":", c.prefix_, " TOPIC ", ch->name, " :", ch->topic, "\r\n"));
  for (client* p : ch->members) p->send(line);
}

void server::impl::cmd_names(client& c, const irc::message& m) {
  long_reply r;
  std::shared_lock lock(state_mu_);
  if (m.params.empty()) {
    for (auto& [key, ch] : channels_) {
      const std::string head = irc::cat("= ", ch->name, " :");
      std::string names;
      for (const client* p : ch->members) names += irc::cat(names.empty() ? "" : " ", p->nick_);
      // One line per channel; long ones are split by send_names' rule.
      if (names.size() + head.size() + 64 > irc::max_line) {
        send_names(r, c, *ch);
        continue;
      }
      reply(r, c, "353", irc::cat(head, names));
    }
    reply(r, c, "366", "* :End of NAMES list");
  } else {
    for (std::string_view name : irc::split_list(m.params[0])) {
      if (channel* ch = find_channel(name)) {
        send_names(r, c, *ch);
      } else {
        reply(r, c, "366", irc::cat(name, " :End of NAMES list"));
      }
    }
  }
  send_reply(c, r, lock);
}

void server::impl::cmd_list(client& c, const irc::message& m) {
  long_reply r;
  std::shared_lock lock(state_mu_);
  reply(r, c, "321", "Channel :Users  Name");
  auto one = [&](const channel& ch) {
    reply(r, c, "322", irc::cat(ch.name, " ", ch.members.size(), " :", ch.topic));
  };
  if (m.params.empty()) {
    for (auto& [key, ch] : channels_) one(*ch);
  } else {
    for (std::string_view name : irc::split_list(m.params[0])) {
      if (channel* ch = find_channel(name)) one(*ch);
    }
  }
  reply(r, c, "323", ":End of LIST");
  send_reply(c, r, lock);
}

void server::impl::cmd_who(client& c, const irc::message& m) {
  const std::string mask = m.params.empty() || m.params[0].empty() ? "*" : m.params[0];
  long_reply r;
  std::shared_lock lock(state_mu_);
  auto one = [&](std::string_view where, const client& p) {
    reply(r, c, "352", irc::cat(where, " ", p.user_, " ", p.host_, " ", opts_.server_name, " ",
                                p.nick_, " H :0 ", p.realname_));
  };
  if (!mask.empty() && mask[0] == '#') {
    if (channel* ch = find_channel(mask)) {
      for (const client* p : ch->members) one(ch->name, *p);
    }
  } else if (client* p = find_nick(mask)) {
    one("*", *p);
  }
  reply(r, c, "315", irc::cat(mask, " :End of WHO list"));
  send_reply(c, r, lock);
}

void server::impl::cmd_whois(client& c, const irc::message& m) {
  if (m.params.empty()) return reply(c, "431", ":No nickname given");
  // "WHOIS server nick" asks a given server: the nick is last.
  const std::string& nick = m.params.back();
  long_reply r;
  std::shared_lock lock(state_mu_);
  client* p = find_nick(nick);
  if (p == nullptr) {
    reply(r, c, "401", irc::cat(nick, " :No such nick/channel"));
    reply(r, c, "318", irc::cat(nick, " :End of WHOIS list"));
    return send_reply(c, r, lock);
  }
  reply(r, c, "311", irc::cat(p->nick_, " ", p->user_, " ", p->host_, " * :", p->realname_));
  // Channels in as many 319 lines as it takes to keep each within 512.
  const std::size_t room = irc::max_line - 2 - opts_.server_name.size() - c.nick_.size() -
                           p->nick_.size() - 12;
  std::string names;
  for (const channel* ch : p->channels_) {
    if (!names.empty() && names.size() + 1 + ch->name.size() > room) {
      reply(r, c, "319", irc::cat(p->nick_, " :", names));
      names.clear();
    }
    names += irc::cat(names.empty() ? "" : " ", ch->name);
  }
  if (!names.empty()) reply(r, c, "319", irc::cat(p->nick_, " :", names));
  reply(r, c, "312", irc::cat(p->nick_, " ", opts_.server_name, " :", opts_.network));
  reply(r, c, "318", irc::cat(p->nick_, " :End of WHOIS list"));
  send_reply(c, r, lock);
}

void server::impl::cmd_mode(client& c, const irc::message& m) {
  if (m.params.empty()) return reply(c, "461", "MODE :Not enough parameters");
  const std::string& target = m.params[0];
  std::shared_lock lock(state_mu_);
  if (target[0] == '#') {
    channel* ch = find_channel(target);
    if (ch == nullptr) return reply(c, "403", irc::cat(target, " :No such channel"));
    if (m.params.size() < 2) {
      reply(c, "324", irc::cat(ch->name, " +n"));
      return reply(c, "329", irc::cat(ch->name, " ", ch->created));
    }
    const std::string& modes = m.params[1];
    if ((modes == "b" || modes == "+b") && m.params.size() == 2) {
      return reply(c, "368", irc::cat(ch->name, " :End of channel ban list"));
    }
    return reply(c, "482", irc::cat(ch->name, " :You're not channel operator"));
  }
  client* p = find_nick(target);
  if (p == nullptr) return reply(c, "401", irc::cat(target, " :No such nick/channel"));
  if (p != &c) return reply(c, "502", ":Cant change mode for other users");
  if (m.params.size() < 2) reply(c, "221", "+");
  // Setting user modes: accepted, and nothing changes.
}

void server::impl::cmd_ison_userhost(client& c, const irc::message& m) {
  const bool ison = m.command == "ISON";
  if (m.params.empty()) return reply(c, "461", irc::cat(m.command, " :Not enough parameters"));
  std::shared_lock lock(state_mu_);
  std::string out;
  std::size_t count = 0;
  for (const std::string& param : m.params) {
    // ISON's nicks may come space-separated in one trailing parameter.
    std::string_view rest = param;
    while (!rest.empty()) {
      const std::size_t sp = rest.find(' ');
      const std::string_view nick = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
      if (nick.empty()) continue;
      if (!ison && ++count > 5) break;  // USERHOST: at most five (RFC 2812 4.8)
      const client* p = find_nick(nick);
      if (p == nullptr) continue;
      if (!out.empty()) out += ' ';
      out += ison ? p->nick_
                  : irc::cat(p->nick_, "=", p->away_.empty() ? "+" : "-", p->user_, "@", p->host_);
    }
  }
  reply(c, ison ? "303" : "302", irc::cat(":", out));
}

// ---- server ----

server::server(options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
server::~server() = default;
void server::serve() { impl_->serve(); }
void server::stop() { impl_->stop(); }
spindle::address server::local_address() const { return impl_->listener_.local_address(); }
chat::stats server::stats() const { return impl_->stats(); }

}  // namespace chat
