// The commands of the key-value server (session::execute), each a
// function over kv::store that appends its reply to the session's output.
// Arguments, errors and replies are Redis 7.0's; docs/kv.md lists where
// they differ.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "fiber/jthread.h"
#include "samples/kv/detail/server_impl.h"
#include "samples/kv/glob.h"
#include "samples/kv/resp.h"

namespace kv::detail {
namespace {

using args_t = std::vector<std::string>;

constexpr std::string_view wrong_type_error =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
constexpr std::string_view not_integer_error = "ERR value is not an integer or out of range";
constexpr std::string_view syntax_error = "ERR syntax error";

std::string lower(std::string_view s) {
  std::string l(s);
  for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l;
}

bool is(std::string_view arg, std::string_view lower_word) {
  return arg.size() == lower_word.size() && lower(arg) == lower_word;
}

// expiry_at() is the time a time to live of `ms` milliseconds ends, or
// nullopt where Redis finds it invalid: past the largest Unix time in
// milliseconds. Beyond what the steady clock holds (about 200 years), the
// key never expires.
std::optional<clock::time_point> expiry_at(std::int64_t ms, clock::time_point now) {
  const std::int64_t unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  if (ms > std::numeric_limits<std::int64_t>::max() - unix_ms) return std::nullopt;
  constexpr std::int64_t longest_ms = 200LL * 365 * 24 * 3600 * 1000;
  if (ms > longest_ms) return clock::time_point::max();
  return now + std::chrono::milliseconds(ms);
}

// The milliseconds left before `e` expires, rounded up.
std::int64_t ms_left(const entry& e, clock::time_point now) {
  return std::chrono::ceil<std::chrono::milliseconds>(e.expires - now).count();
}

// ---- Connection and server ----

void ping(session& s, args_t& a) {
  if (a.size() == 1) {
    reply_simple(s.out, "PONG");
  } else {
    reply_bulk(s.out, a[1]);
  }
}

void echo(session& s, args_t& a) { reply_bulk(s.out, a[1]); }

void quit(session& s, args_t&) {
  reply_simple(s.out, "OK");
  s.closing = true;
}

// SELECT: there is one database, 0.
void select(session& s, args_t& a) {
  const std::optional<std::int64_t> db = parse_int64(a[1]);
  if (!db) return reply_error(s.out, not_integer_error);
  if (*db != 0) return reply_error(s.out, "ERR DB index is out of range");
  reply_simple(s.out, "OK");
}

// COMMAND (redis-cli asks for COMMAND DOCS as it starts): an empty list.
void command(session& s, args_t&) { reply_array(s.out, 0); }

// CONFIG GET: a few parameters, with the values clients look at
// (redis-benchmark reads "save" and "appendonly").
void config(session& s, args_t& a) {
  if (!is(a[1], "get")) {
    return reply_error(s.out, absl::StrCat("ERR unknown subcommand '", a[1], "'. Try CONFIG HELP."));
  }
  if (a.size() < 3) return reply_error(s.out, "ERR wrong number of arguments for 'config|get' command");
  const options& o = s.srv.opts_;
  const std::pair<std::string_view, std::string> params[] = {
      {"save", ""},
      {"appendonly", "no"},
      {"databases", "1"},
      {"maxclients", std::to_string(o.max_clients)},
      {"proto-max-bulk-len", std::to_string(o.limits.max_bulk)},
  };
  std::vector<std::pair<std::string_view, std::string_view>> found;
  for (const auto& [name, value] : params) {
    for (std::size_t i = 2; i < a.size(); ++i) {
      if (glob_match(lower(a[i]), name)) {
        found.emplace_back(name, value);
        break;
      }
    }
  }
  reply_array(s.out, 2 * found.size());
  for (const auto& [name, value] : found) {
    reply_bulk(s.out, name);
    reply_bulk(s.out, value);
  }
}

void info(session& s, args_t& a) {
  const bool all = a.size() == 1 || is(a[1], "all") || is(a[1], "default") || is(a[1], "everything");
  const auto wanted = [&](std::string_view section) {
    return all || std::any_of(a.begin() + 1, a.end(), [&](const std::string& x) { return is(x, section); });
  };
  const kv::stats st = s.srv.stats();
  std::string text;
  if (wanted("server")) {
    absl::StrAppend(&text, "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n",
                    "kv_server:spindle\r\nprocess_id:", ::getpid(),
                    "\r\ntcp_port:", s.srv.port_, "\r\nuptime_in_seconds:",
                    std::chrono::duration_cast<std::chrono::seconds>(clock::now() - s.srv.started_).count(),
                    "\r\n\r\n");
  }
  if (wanted("clients")) {
    absl::StrAppend(&text, "# Clients\r\nconnected_clients:", st.clients, "\r\nblocked_clients:", st.blocked,
                    "\r\nmaxclients:", s.srv.opts_.max_clients, "\r\n\r\n");
  }
  if (wanted("stats")) {
    absl::StrAppend(&text, "# Stats\r\ntotal_connections_received:", st.accepted,
                    "\r\ntotal_commands_processed:", st.commands,
                    "\r\nrejected_connections:", st.refused, "\r\n\r\n");
  }
  if (wanted("keyspace")) {
    std::size_t keys = 0, expires = 0;
    s.srv.store_.for_each_shard([&](shard& sh, clock::time_point) {
      keys += sh.map.size();
      expires += sh.deadlines.size();
    });
    absl::StrAppend(&text, "# Keyspace\r\n");
    // As Redis, an empty database is not listed.
    if (keys > 0) absl::StrAppend(&text, "db0:keys=", keys, ",expires=", expires, ",avg_ttl=0\r\n");
  }
  reply_bulk(s.out, text);
}

// ---- Keys ----

void del(session& s, args_t& a) {
  std::int64_t n = 0;
  for (std::size_t i = 1; i < a.size(); ++i) {
    n += s.srv.store_.with_shard(a[i], [&](shard& sh, clock::time_point now) {
      return sh.find(a[i], now) != nullptr && sh.erase(a[i]);
    });
  }
  reply_int(s.out, n);
}

void exists(session& s, args_t& a) {
  std::int64_t n = 0;
  for (std::size_t i = 1; i < a.size(); ++i) {
    n += s.srv.store_.with_shard(
        a[i], [&](shard& sh, clock::time_point now) { return sh.find(a[i], now) != nullptr; });
  }
  reply_int(s.out, n);
}

void type(session& s, args_t& a) {
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    const entry* e = sh.find(a[1], now);
    reply_simple(s.out, e == nullptr ? "none" : std::holds_alternative<list>(e->value) ? "list" : "string");
  });
}

// EXPIRE and PEXPIRE; `unit_ms` is 1000 for EXPIRE.
void expire_in(session& s, args_t& a, std::int64_t unit_ms) {
  if (a.size() > 3) return reply_error(s.out, absl::StrCat("ERR Unsupported option ", a[3]));
  const std::optional<std::int64_t> t = parse_int64(a[2]);
  if (!t) return reply_error(s.out, not_integer_error);
  const std::string invalid = absl::StrCat("ERR invalid expire time in '", lower(a[0]), "' command");
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  if (*t > max / unit_ms || *t < -(max / unit_ms)) return reply_error(s.out, invalid);
  const std::int64_t ms = *t * unit_ms;
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    entry* e = sh.find(a[1], now);
    if (e == nullptr) return reply_int(s.out, 0);
    if (ms <= 0) {  // a time in the past: the key goes at once
      sh.erase(a[1]);
      return reply_int(s.out, 1);
    }
    const std::optional<clock::time_point> at = expiry_at(ms, now);
    if (!at) return reply_error(s.out, invalid);
    sh.set_expiry(a[1], *e, *at);
    reply_int(s.out, 1);
  });
}

void expire(session& s, args_t& a) { expire_in(s, a, 1000); }
void pexpire(session& s, args_t& a) { expire_in(s, a, 1); }

// TTL and PTTL: -2 for no key, -1 for a key that does not expire.
void ttl_in(session& s, args_t& a, bool ms) {
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    const entry* e = sh.find(a[1], now);
    if (e == nullptr) return reply_int(s.out, -2);
    if (e->expires == clock::time_point::max()) return reply_int(s.out, -1);
    const std::int64_t left = ms_left(*e, now);
    reply_int(s.out, ms ? left : (left + 500) / 1000);  // rounded, as Redis does
  });
}

void ttl(session& s, args_t& a) { ttl_in(s, a, false); }
void pttl(session& s, args_t& a) { ttl_in(s, a, true); }

void persist(session& s, args_t& a) {
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    entry* e = sh.find(a[1], now);
    if (e == nullptr || e->expires == clock::time_point::max()) return reply_int(s.out, 0);
    sh.set_expiry(a[1], *e, clock::time_point::max());
    reply_int(s.out, 1);
  });
}

void keys(session& s, args_t& a) {
  std::vector<std::string> found;
  s.srv.store_.for_each_shard([&](shard& sh, clock::time_point now) {
    for (const auto& [k, e] : sh.map) {
      if (e.expires > now && glob_match(a[1], k)) found.push_back(k);
    }
  });
  reply_array(s.out, found.size());
  for (const std::string& k : found) reply_bulk(s.out, k);
}

// SCAN cursor [MATCH pattern] [COUNT count]: the cursor is a position in
// the order of the keys' hashes (store::scan).
void scan(session& s, args_t& a) {
  std::uint64_t cursor = 0;
  const auto [end, ec] = std::from_chars(a[1].data(), a[1].data() + a[1].size(), cursor);
  if (ec != std::errc() || end != a[1].data() + a[1].size()) {
    return reply_error(s.out, "ERR invalid cursor");
  }
  std::int64_t count = 10;  // Redis's default
  std::string_view pattern = "*";
  for (std::size_t i = 2; i < a.size(); i += 2) {
    if (i + 1 >= a.size()) return reply_error(s.out, syntax_error);
    if (is(a[i], "count")) {
      const std::optional<std::int64_t> c = parse_int64(a[i + 1]);
      if (!c) return reply_error(s.out, not_integer_error);
      if (*c < 1) return reply_error(s.out, syntax_error);
      count = *c;
    } else if (is(a[i], "match")) {
      pattern = a[i + 1];
    } else {
      return reply_error(s.out, syntax_error);
    }
  }
  std::vector<std::string> found;
  const std::uint64_t next = s.srv.store_.scan(cursor, static_cast<std::size_t>(count), found);
  std::erase_if(found, [&](const std::string& k) { return !glob_match(pattern, k); });
  reply_array(s.out, 2);
  reply_bulk(s.out, std::to_string(next));
  reply_array(s.out, found.size());
  for (const std::string& k : found) reply_bulk(s.out, k);
}

void dbsize(session& s, args_t&) {
  std::size_t n = 0;
  s.srv.store_.for_each_shard([&](shard& sh, clock::time_point) { n += sh.map.size(); });
  reply_int(s.out, static_cast<std::int64_t>(n));
}

void flushall(session& s, args_t& a) {
  if (a.size() == 2 && !is(a[1], "async") && !is(a[1], "sync")) return reply_error(s.out, syntax_error);
  s.srv.store_.for_each_shard([](shard& sh, clock::time_point) {
    sh.map.clear();
    sh.deadlines.clear();
  });
  reply_simple(s.out, "OK");
}

// ---- Strings ----

void get(session& s, args_t& a) {
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    const entry* e = sh.find(a[1], now);
    if (e == nullptr) return reply_nil(s.out);
    const std::string* v = std::get_if<std::string>(&e->value);
    if (v == nullptr) return reply_error(s.out, wrong_type_error);
    reply_bulk(s.out, *v);
  });
}

// SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]
void set(session& s, args_t& a) {
  bool nx = false, xx = false, get_old = false, keep_ttl = false;
  const std::string* ttl_arg = nullptr;
  std::int64_t unit_ms = 1;
  for (std::size_t i = 3; i < a.size(); ++i) {
    const bool has_next = i + 1 < a.size();
    if (is(a[i], "nx") && !xx) {
      nx = true;
    } else if (is(a[i], "xx") && !nx) {
      xx = true;
    } else if (is(a[i], "get")) {
      get_old = true;
    } else if (is(a[i], "keepttl") && ttl_arg == nullptr) {
      keep_ttl = true;
    } else if ((is(a[i], "ex") || is(a[i], "px")) && !keep_ttl && ttl_arg == nullptr && has_next) {
      unit_ms = is(a[i], "ex") ? 1000 : 1;
      ttl_arg = &a[++i];
    } else {
      return reply_error(s.out, syntax_error);
    }
  }
  clock::time_point expires = clock::time_point::max();
  if (ttl_arg != nullptr) {
    const std::optional<std::int64_t> t = parse_int64(*ttl_arg);
    if (!t) return reply_error(s.out, not_integer_error);
    constexpr std::string_view invalid = "ERR invalid expire time in 'set' command";
    if (*t <= 0 || *t > std::numeric_limits<std::int64_t>::max() / unit_ms) {
      return reply_error(s.out, invalid);
    }
    const std::optional<clock::time_point> at = expiry_at(*t * unit_ms, clock::now());
    if (!at) return reply_error(s.out, invalid);
    expires = *at;
  }
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    entry* e = sh.find(a[1], now);
    const std::string* old = e != nullptr ? std::get_if<std::string>(&e->value) : nullptr;
    if (get_old && e != nullptr && old == nullptr) return reply_error(s.out, wrong_type_error);
    if (get_old) {
      if (old != nullptr) {
        reply_bulk(s.out, *old);
      } else {
        reply_nil(s.out);
      }
    }
    if ((nx && e != nullptr) || (xx && e == nullptr)) {
      if (!get_old) reply_nil(s.out);
      return;
    }
    if (e == nullptr) {
      e = &sh.put(a[1], std::move(a[2]));
    } else {
      e->value = std::move(a[2]);
    }
    if (!keep_ttl) sh.set_expiry(a[1], *e, expires);
    if (!get_old) reply_simple(s.out, "OK");
  });
}

void incr_by(session& s, const std::string& key, std::int64_t delta) {
  s.srv.store_.with_shard(key, [&](shard& sh, clock::time_point now) {
    entry* e = sh.find(key, now);
    std::int64_t n = 0;
    if (e != nullptr) {
      const std::string* v = std::get_if<std::string>(&e->value);
      if (v == nullptr) return reply_error(s.out, wrong_type_error);
      const std::optional<std::int64_t> parsed = parse_int64(*v);
      if (!parsed) return reply_error(s.out, not_integer_error);
      n = *parsed;
    }
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t min = std::numeric_limits<std::int64_t>::min();
    if ((delta > 0 && n > max - delta) || (delta < 0 && n < min - delta)) {
      return reply_error(s.out, "ERR increment or decrement would overflow");
    }
    n += delta;
    if (e == nullptr) {
      sh.put(key, std::to_string(n));
    } else {
      e->value = std::to_string(n);  // its time to live stays
    }
    reply_int(s.out, n);
  });
}

void incr(session& s, args_t& a) { incr_by(s, a[1], 1); }
void decr(session& s, args_t& a) { incr_by(s, a[1], -1); }

void incrby(session& s, args_t& a) {
  const std::optional<std::int64_t> d = parse_int64(a[2]);
  if (!d) return reply_error(s.out, not_integer_error);
  incr_by(s, a[1], *d);
}

void decrby(session& s, args_t& a) {
  const std::optional<std::int64_t> d = parse_int64(a[2]);
  if (!d) return reply_error(s.out, not_integer_error);
  if (*d == std::numeric_limits<std::int64_t>::min()) {
    return reply_error(s.out, "ERR decrement would overflow");
  }
  incr_by(s, a[1], -*d);
}

void mget(session& s, args_t& a) {
  reply_array(s.out, a.size() - 1);
  for (std::size_t i = 1; i < a.size(); ++i) {
    s.srv.store_.with_shard(a[i], [&](shard& sh, clock::time_point now) {
      const entry* e = sh.find(a[i], now);
      const std::string* v = e != nullptr ? std::get_if<std::string>(&e->value) : nullptr;
      if (v == nullptr) return reply_nil(s.out);  // no key, or not a string
      reply_bulk(s.out, *v);
    });
  }
}

// MSET key value [key value ...]: each key is set under its own shard's
// lock, so another client may see some of the keys set and not others.
void mset(session& s, args_t& a) {
  if (a.size() % 2 == 0) return reply_error(s.out, "ERR wrong number of arguments for 'mset' command");
  for (std::size_t i = 1; i < a.size(); i += 2) {
    s.srv.store_.with_shard(a[i], [&](shard& sh, clock::time_point now) {
      entry* e = sh.find(a[i], now);
      if (e == nullptr) {
        sh.put(a[i], std::move(a[i + 1]));
      } else {
        e->value = std::move(a[i + 1]);
        sh.set_expiry(a[i], *e, clock::time_point::max());
      }
    });
  }
  reply_simple(s.out, "OK");
}

// ---- Lists ----

void push(session& s, args_t& a, end at) {
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    entry* e = sh.find(a[1], now);
    if (e != nullptr && !std::holds_alternative<list>(e->value)) return reply_error(s.out, wrong_type_error);
    list& l = std::get<list>((e != nullptr ? *e : sh.put(a[1], list{})).value);
    for (std::size_t i = 2; i < a.size(); ++i) {
      if (at == end::left) {
        l.push_front(std::move(a[i]));
      } else {
        l.push_back(std::move(a[i]));
      }
    }
    // As Redis: the length after the push, before blocked clients take
    // their elements.
    reply_int(s.out, static_cast<std::int64_t>(l.size()));
    sh.serve_waiters(a[1], l);
  });
}

void lpush(session& s, args_t& a) { push(s, a, end::left); }
void rpush(session& s, args_t& a) { push(s, a, end::right); }

// LPOP and RPOP key [count].
void pop(session& s, args_t& a, end from) {
  std::optional<std::int64_t> count;
  if (a.size() == 3) {
    count = parse_int64(a[2]);
    if (!count || *count < 0) return reply_error(s.out, "ERR value is out of range, must be positive");
  }
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    entry* e = sh.find(a[1], now);
    if (e == nullptr) return count ? reply_nil_array(s.out) : reply_nil(s.out);
    list* l = std::get_if<list>(&e->value);
    if (l == nullptr) return reply_error(s.out, wrong_type_error);
    const std::size_t n = count ? std::min<std::size_t>(static_cast<std::size_t>(*count), l->size()) : 1;
    if (count) reply_array(s.out, n);
    for (std::size_t i = 0; i < n; ++i) {
      reply_bulk(s.out, from == end::left ? l->front() : l->back());
      if (from == end::left) {
        l->pop_front();
      } else {
        l->pop_back();
      }
    }
    if (l->empty()) sh.erase(a[1]);
  });
}

void lpop(session& s, args_t& a) { pop(s, a, end::left); }
void rpop(session& s, args_t& a) { pop(s, a, end::right); }

void lrange(session& s, args_t& a) {
  const std::optional<std::int64_t> start = parse_int64(a[2]), stop = parse_int64(a[3]);
  if (!start || !stop) return reply_error(s.out, not_integer_error);
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    const entry* e = sh.find(a[1], now);
    if (e == nullptr) return reply_array(s.out, 0);
    const list* l = std::get_if<list>(&e->value);
    if (l == nullptr) return reply_error(s.out, wrong_type_error);
    const auto len = static_cast<std::int64_t>(l->size());
    std::int64_t from = *start < 0 ? std::max<std::int64_t>(*start + len, 0) : *start;
    std::int64_t to = *stop < 0 ? *stop + len : std::min(*stop, len - 1);
    if (from > to || from >= len) return reply_array(s.out, 0);
    reply_array(s.out, static_cast<std::size_t>(to - from + 1));
    for (std::int64_t i = from; i <= to; ++i) reply_bulk(s.out, (*l)[static_cast<std::size_t>(i)]);
  });
}

void llen(session& s, args_t& a) {
  s.srv.store_.with_shard(a[1], [&](shard& sh, clock::time_point now) {
    const entry* e = sh.find(a[1], now);
    if (e == nullptr) return reply_int(s.out, 0);
    const list* l = std::get_if<list>(&e->value);
    if (l == nullptr) return reply_error(s.out, wrong_type_error);
    reply_int(s.out, static_cast<std::int64_t>(l->size()));
  });
}

// BLPOP and BRPOP key [key ...] timeout: pops from the first non-empty
// list, or parks the session until a push to one of the keys hands it an
// element, the timeout (seconds, with decimals; 0: none) passes, or the
// client goes away.
void blocking_pop(session& s, args_t& a, end from) {
  const std::string& t = a.back();
  char* parsed_to = nullptr;
  const double seconds = std::strtod(t.c_str(), &parsed_to);
  if (t.empty() || parsed_to != t.c_str() + t.size() || std::isspace(static_cast<unsigned char>(t[0])) ||
      !std::isfinite(seconds)) {
    return reply_error(s.out, "ERR timeout is not a float or out of range");
  }
  if (seconds < 0) return reply_error(s.out, "ERR timeout is negative");
  // Redis's bound: the timeout in milliseconds must fit in 64 bits (past
  // it, Redis's conversion wraps and it says "negative" too).
  if (seconds * 1000 >= 9.2e18) return reply_error(s.out, "ERR timeout is negative");
  // Beyond this the wait is as good as for ever (and a deadline that far
  // off would not fit in the clock).
  constexpr double forever_s = 1e9;
  const std::span<const std::string> keys(a.data() + 1, a.size() - 2);

  popped p;
  bool wrong_type = false;
  std::shared_ptr<pop_waiter> w = s.srv.store_.pop_or_wait(keys, from, p, wrong_type);
  if (wrong_type) return reply_error(s.out, wrong_type_error);
  if (w != nullptr) {
    // The replies to the commands before this one go now, as Redis sends
    // them, not after the wait.
    const bool written = s.flush();
    std::optional<popped> answer;
    s.srv.blocked_.fetch_add(1, std::memory_order_relaxed);
    {
      // While the session waits, a watcher reads the connection: the end
      // of the stream (the client left, or the server stops) answers the
      // waiter with `canceled`. What it reads is kept for after the wait.
      spindle::jthread watcher([&](std::stop_token stop) {
        char buf[4096];
        std::error_code ec;
        std::size_t n = 1;
        while (written && n > 0 && !ec && s.in.size() <= max_query_buffer) {
          n = s.conn.read_some(std::span<char>(buf), ec);
          if (ec == std::errc::operation_canceled && stop.stop_requested()) return;  // answered
          s.in.append(buf, n);
        }
        if (w->claim()) (void)w->result.try_send(popped{true, {}, {}});
      });
      if (seconds == 0 || seconds > forever_s) {
        answer = w->result.recv();
      } else {
        const auto timeout = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
        if (w->result.recv_for(answer, timeout) == spindle::channel_status::timeout && !w->claim()) {
          answer = w->result.recv();  // claimed by a push as the time ran out: its element
        }
      }
    }  // the watcher stops and is joined
    s.srv.store_.forget(keys, w);
    s.srv.blocked_.fetch_sub(1, std::memory_order_relaxed);
    if (!answer) return reply_nil_array(s.out);  // timed out
    if (answer->canceled) {
      s.closing = true;
      return;
    }
    p = std::move(*answer);
  }
  reply_array(s.out, 2);
  reply_bulk(s.out, p.key);
  reply_bulk(s.out, p.value);
}

void blpop(session& s, args_t& a) { blocking_pop(s, a, end::left); }
void brpop(session& s, args_t& a) { blocking_pop(s, a, end::right); }

// ---- The table ----

struct command_def {
  void (*run)(session&, args_t&);
  // Arguments, the command's name included: at least, and at most (-1:
  // no limit). Outside them: "wrong number of arguments".
  int min_args;
  int max_args;
};

const absl::flat_hash_map<std::string, command_def>& commands() {
  static const absl::flat_hash_map<std::string, command_def> table = {
      {"ping", {ping, 1, 2}},       {"echo", {echo, 2, 2}},         {"quit", {quit, 1, -1}},
      {"select", {select, 2, 2}},   {"command", {command, 1, -1}},  {"config", {config, 2, -1}},
      {"info", {info, 1, -1}},      {"del", {del, 2, -1}},          {"exists", {exists, 2, -1}},
      {"type", {type, 2, 2}},       {"expire", {expire, 3, -1}},    {"pexpire", {pexpire, 3, -1}},
      {"ttl", {ttl, 2, 2}},         {"pttl", {pttl, 2, 2}},         {"persist", {persist, 2, 2}},
      {"keys", {keys, 2, 2}},       {"scan", {scan, 2, -1}},        {"dbsize", {dbsize, 1, 1}},
      {"flushall", {flushall, 1, 2}}, {"get", {get, 2, 2}},         {"set", {set, 3, -1}},
      {"incr", {incr, 2, 2}},       {"decr", {decr, 2, 2}},         {"incrby", {incrby, 3, 3}},
      {"decrby", {decrby, 3, 3}},   {"mget", {mget, 2, -1}},        {"mset", {mset, 3, -1}},
      {"lpush", {lpush, 3, -1}},    {"rpush", {rpush, 3, -1}},      {"lpop", {lpop, 2, 3}},
      {"rpop", {rpop, 2, 3}},       {"lrange", {lrange, 4, 4}},     {"llen", {llen, 2, 2}},
      {"blpop", {blpop, 3, -1}},    {"brpop", {brpop, 3, -1}},
  };
  return table;
}

// The error for a command there is none of, worded as Redis words it:
// the name and the first arguments, quoted, cut to about 128 bytes.
std::string unknown_command(const args_t& a) {
  constexpr std::size_t shown = 128;
  std::string args;
  for (std::size_t i = 1; i < a.size() && args.size() < shown; ++i) {
    absl::StrAppend(&args, "'", a[i].substr(0, shown - args.size()), "' ");
  }
  std::string e = absl::StrCat("ERR unknown command '", a[0].substr(0, shown),
                               "', with args beginning with: ", args);
  std::replace_if(e.begin(), e.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return e;
}

}  // namespace

void session::execute(std::vector<std::string>& args) {
  srv.commands_.fetch_add(1, std::memory_order_relaxed);
  const std::string name = lower(args[0]);
  const auto it = commands().find(name);
  if (it == commands().end()) return reply_error(out, unknown_command(args));
  const command_def& c = it->second;
  const auto n = static_cast<int>(std::min<std::size_t>(args.size(), std::numeric_limits<int>::max()));
  if (n < c.min_args || (c.max_args >= 0 && n > c.max_args)) {
    return reply_error(out, absl::StrCat("ERR wrong number of arguments for '", name, "' command"));
  }
  c.run(*this, args);
}

}  // namespace kv::detail
