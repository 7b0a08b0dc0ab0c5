// chat::detail::server_impl: the chat server's state and the functions
// that serve it, behind chat::server (server.h). Private to samples/chat.
// Its functions are defined in three files:
//   server.cpp    accepting connections, stopping, counters;
//   client.cpp    a connection: its send queue and writer (class client),
//                 and its session, which reads lines and hands them to
//   commands.cpp  the IRC command handlers, over the shared state.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "io/listener.h"
#include "samples/chat/detail/client.h"
#include "samples/chat/irc.h"
#include "samples/chat/server.h"
#include "sync/mutex.h"
#include "sync/shared_mutex.h"
#include "sync/wait_group.h"

namespace chat::detail {

// What a session has read and not yet handled (client.cpp).
struct input;

// A channel, all of it under server_impl::state_mu_; it exists while it
// has members.
struct channel {
  std::string name;  // as its creator spelled it
  std::string topic;
  std::string topic_who;
  std::int64_t topic_time = 0;
  std::int64_t created = 0;
  std::vector<client*> members;  // in the order they joined
};

// The server behind chat::server. Its state is in three parts, each under
// its own lock: what IRC shares between clients (state_mu_), the set of
// connections (conns_mu_), and each client's send queue (the client's
// q_mu_). Lock order: state_mu_, then a client's q_mu_, never the
// reverse; conns_mu_ is never held with another.
class server_impl {
 public:
  explicit server_impl(options o);  // server.cpp, as are serve, stop and stats

  void serve();
  void stop();
  chat::stats stats();

  const options opts_;
  spindle::listener listener_;
  std::atomic<bool> stopping_{false};
  const std::string created_;

  // ---- shared state (commands.cpp says who takes it how) ----
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

  // ---- a session (client.cpp) ----
  // session() is a connection's reader fiber: reads lines and handles
  // each in turn until the client quits or is disconnected.
  void session(const std::shared_ptr<client>& c);
  // flood_wait() takes the flood limit's token for the next line, waiting
  // for it if need be (reading on meanwhile). False when the session
  // should end: the client was disconnected, or it closed its connection
  // (then `gone` says how).
  bool flood_wait(client& c, input& in, std::string& gone);

  // ---- commands (commands.cpp) ----
  // Handles one line; false when the session should end (QUIT).
  bool handle(client& c, std::string_view line);
  void try_register(client& c);
  void unregister(client& c, std::string_view reason);
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
                    c.nick_.empty() ? std::string_view("*") : std::string_view(c.nick_), " ", rest,
                    "\r\n");
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

}  // namespace chat::detail
