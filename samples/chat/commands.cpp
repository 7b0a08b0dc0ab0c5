// The chat server's IRC commands: server_impl::handle() takes a line from
// a client's session (client.cpp) and calls the command's handler, which
// answers the client and relays to others through their send queues.
//
// Shared state (nicknames, channels and their members, topics) sits under
// one spindle::shared_mutex, state_mu_: commands that change it (NICK,
// JOIN, PART, TOPIC, QUIT) take it exclusively, and the frequent ones that
// only read it (PRIVMSG, NOTICE, NAMES, WHO, LIST) take it shared, so
// messages from different clients are relayed in parallel on different
// workers. Order: a client's session handles its lines one after another
// and queues each relayed line to every member before reading the next,
// and each queue is FIFO, so every member receives a sender's messages in
// the order sent. A long reply is built under state_mu_ and sent with
// send_reply(), which lets the lock go before waiting for the client.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "samples/chat/detail/server_impl.h"
#include "samples/chat/irc.h"

namespace chat::detail {
namespace {

constexpr std::string_view version = "spindle-chat-0.1";
constexpr std::size_t max_user = 10;
constexpr std::size_t max_topic = 390;
constexpr std::size_t max_channels_per_client = 50;

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

bool server_impl::handle(client& c, std::string_view line) {
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

void server_impl::cmd_pass(client& c, const irc::message& m) {
  if (c.registered_) return reply(c, "462", ":You may not reregister");
  if (m.params.empty()) return reply(c, "461", "PASS :Not enough parameters");
  c.pass_ = m.params[0];
}

void server_impl::cmd_user(client& c, const irc::message& m) {
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

void server_impl::cmd_cap(client& c, const irc::message& m) {
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

void server_impl::cmd_nick(client& c, const irc::message& m) {
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

void server_impl::try_register(client& c) {
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

void server_impl::unregister(client& c, std::string_view reason) {
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

void server_impl::part_locked(client& c, channel* ch, const line_ptr& line) {
  if (line) {
    for (client* p : ch->members) p->send(line);
  }
  std::erase(ch->members, &c);
  std::erase(c.channels_, ch);
  if (ch->members.empty()) channels_.erase(irc::fold(ch->name));
}

void server_impl::send_names(long_reply& r, const client& c, const channel& ch) const {
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

void server_impl::cmd_join(client& c, const irc::message& m) {
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

void server_impl::cmd_part(client& c, const irc::message& m) {
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

void server_impl::cmd_privmsg(client& c, const irc::message& m, bool notice) {
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

void server_impl::cmd_topic(client& c, const irc::message& m) {
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

void server_impl::cmd_names(client& c, const irc::message& m) {
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

void server_impl::cmd_list(client& c, const irc::message& m) {
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

void server_impl::cmd_who(client& c, const irc::message& m) {
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

void server_impl::cmd_whois(client& c, const irc::message& m) {
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

void server_impl::cmd_mode(client& c, const irc::message& m) {
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

void server_impl::cmd_ison_userhost(client& c, const irc::message& m) {
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

}  // namespace chat::detail
