// chat::detail::client: one connection of the chat server, with its send
// queue and the writer fiber that drains it (client.cpp, where the design
// of the queue and of long replies is written up). Private to
// samples/chat: the public type is chat::server (server.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "io/conn.h"
#include "sync/condition_variable.h"
#include "sync/mutex.h"

namespace chat::detail {

using clock = std::chrono::steady_clock;
using line_ptr = std::shared_ptr<const std::string>;

class server_impl;
struct channel;

// make_line() is a line to send, shared by every queue it goes into.
// Every line the server sends goes through here, and none is longer than
// 512 bytes, CR LF included (RFC 1459 2.3): a reply that echoes a long
// parameter (a PONG's token, a 421's command, a long real name or reason)
// is cut, keeping its CR LF.
line_ptr make_line(std::string s);

// A reply of many lines, built under state_mu_ and then queued as the
// client drains it (client::begin_reply, client::end_reply).
struct long_reply {
  std::vector<line_ptr> lines;
  std::size_t next = 0;  // lines[next] is the first not yet queued
};

// One connection. Identity and memberships are guarded by the server's
// state_mu_ (written under it exclusively, by this client's session
// only); the send queue by q_mu_.
class client {
 public:
  client(server_impl& srv, spindle::connection conn, std::string ip);

  server_impl& srv_;
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
  // closing_, readable without the lock (the session checks it per line).
  std::atomic<bool> dead_{false};
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
  bool closing_ = false;         // q_mu_
  bool discarded_ = false;       // q_mu_: kill() dropped what was queued
  std::string reason_;           // q_mu_
};

}  // namespace chat::detail
