// The sharded key space (store.h).
#include "samples/kv/store.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace kv {
namespace {

// pop() takes the element at `from` off `l`, which is not empty.
std::string pop(list& l, end from) {
  std::string v;
  if (from == end::left) {
    v = std::move(l.front());
    l.pop_front();
  } else {
    v = std::move(l.back());
    l.pop_back();
  }
  return v;
}

// Debian's abseil has its own string_view, which is what its maps take
// for lookups without a std::string.
absl::string_view as_absl(std::string_view s) { return {s.data(), s.size()}; }

// Keys expire_due() removes from one shard in one go; it lets the shard
// go between batches.
constexpr int expire_batch = 64;

}  // namespace

entry* shard::find(std::string_view key, clock::time_point now) {
  auto it = map.find(as_absl(key));
  if (it == map.end()) return nullptr;
  if (it->second.expires <= now) {
    deadlines.erase(it->second.deadline);
    map.erase(it);
    return nullptr;
  }
  return &it->second;
}

entry& shard::put(std::string_view key, std::variant<std::string, list> fresh) {
  auto [it, inserted] = map.try_emplace(as_absl(key));
  if (inserted) it->second.value = std::move(fresh);
  return it->second;
}

bool shard::erase(std::string_view key) {
  auto it = map.find(as_absl(key));
  if (it == map.end()) return false;
  if (it->second.expires != clock::time_point::max()) deadlines.erase(it->second.deadline);
  map.erase(it);
  return true;
}

void shard::set_expiry(std::string_view key, entry& e, clock::time_point at) {
  if (e.expires != clock::time_point::max()) deadlines.erase(e.deadline);
  e.expires = at;
  if (at != clock::time_point::max()) e.deadline = deadlines.emplace(at, std::string(key));
}

void shard::serve_waiters(std::string_view key, list& l) {
  auto q = waiters.find(as_absl(key));
  if (q == waiters.end()) return;
  while (!l.empty() && !q->second.empty()) {
    std::shared_ptr<pop_waiter> w = std::move(q->second.front());
    q->second.pop_front();
    // A waiter that timed out, went away, or was served through another
    // of its keys is claimed already: skip it.
    if (!w->claim()) continue;
    // Room for exactly this one answer: try_send cannot find it full.
    (void)w->result.try_send(popped{false, std::string(key), pop(l, w->from)});
  }
  if (q->second.empty()) waiters.erase(q);
  if (l.empty()) erase(key);
}

std::uint64_t store::hash(std::string_view key) { return absl::Hash<std::string_view>{}(key); }

std::uint64_t store::scan(std::uint64_t cursor, std::size_t count, std::vector<std::string>& keys) {
  std::vector<std::pair<std::uint64_t, std::string>> found;
  for (std::size_t s = cursor >> (64 - shard_bits); s < shard_count; ++s) {
    if (keys.size() >= count) return s << (64 - shard_bits);  // this shard's start
    shard& sh = shards_[s];
    const std::uint64_t from = s == cursor >> (64 - shard_bits) ? cursor : s << (64 - shard_bits);
    found.clear();
    on_shard(sh, [&](shard& sh, clock::time_point now) {
      for (const auto& [k, e] : sh.map) {
        const std::uint64_t h = hash(k);
        if (h >= from && e.expires > now) found.emplace_back(h, k);
      }
    });
    std::sort(found.begin(), found.end());
    std::size_t i = 0;
    // Keys of equal hash go out together: the next cursor must be past
    // all of them or none.
    while (i < found.size() && (keys.size() < count || (i > 0 && found[i].first == found[i - 1].first))) {
      keys.push_back(std::move(found[i].second));
      ++i;
    }
    if (i < found.size()) return found[i].first;
  }
  return 0;
}

void store::expire_due() {
  for (shard& sh : shards_) {
    // In batches: a client waits for one batch at most.
    while (on_shard(sh, [](shard& sh, clock::time_point now) {
      for (int n = 0; n < expire_batch; ++n) {
        if (sh.deadlines.empty() || sh.deadlines.begin()->first > now) return false;
        sh.erase(sh.deadlines.begin()->second);  // removes the deadline too
      }
      return true;  // perhaps more
    })) {
    }
  }
}

std::shared_ptr<pop_waiter> store::pop_or_wait(std::span<const std::string> keys, kv::end from,
                                               popped& out, bool& wrong_type) {
  // Registered on each key as it is found empty, in the same step as the
  // look: a push after the look cannot miss the waiter. If a later key holds
  // elements, the waiter claims itself, unless a push to an earlier key
  // claimed it first and answered on its channel.
  auto w = std::make_shared<pop_waiter>(from);
  enum class found { empty, popped, wrong_type, answered };
  std::size_t registered = 0;
  for (const std::string& key : keys) {
    const found f = with_shard(key, [&](shard& sh, clock::time_point now) {
      entry* e = sh.find(key, now);
      if (e == nullptr) {
        sh.waiters[key].push_back(w);
        return found::empty;
      }
      // Answered already through an earlier key: that answer wins.
      if (!w->claim()) return found::answered;
      list* l = std::get_if<list>(&e->value);
      if (l == nullptr) return found::wrong_type;
      out = popped{false, key, pop(*l, from)};
      if (l->empty()) sh.erase(key);
      return found::popped;
    });
    if (f == found::answered) return w;
    if (f != found::empty) {
      wrong_type = f == found::wrong_type;
      forget(keys.first(registered), w);
      return nullptr;
    }
    ++registered;
  }
  return w;
}

void store::forget(std::span<const std::string> keys, const std::shared_ptr<pop_waiter>& w) {
  for (const std::string& key : keys) {
    with_shard(key, [&](shard& sh, clock::time_point) {
      auto q = sh.waiters.find(as_absl(key));
      if (q == sh.waiters.end()) return;
      std::erase(q->second, w);
      if (q->second.empty()) sh.waiters.erase(q);
    });
  }
}

store::store(kv::sharding how) : how_(how) {
  if (how_ != sharding::owner) return;
  for (shard& sh : shards_) {
    owners_.emplace_back([&sh] {
      while (std::optional<shard_task> t = sh.inbox.recv()) {
        t->work();
        // The sender may destroy `done` as soon as it has the answer.
        (void)t->done->try_send(true);
      }
    });
  }
}

store::~store() {
  for (shard& sh : shards_) sh.inbox.close();
  for (spindle::fiber& f : owners_) f.join();
}

void store::run_on_owner(shard& sh, absl::FunctionRef<void()> work) {
  spindle::channel<bool> done(1);
  sh.inbox.send(shard_task{work, &done});
  (void)done.recv();
}

}  // namespace kv
