// kv::store: the key space kv_server's clients share, in shards. A key's
// hash picks its shard, and each shard is used by one fiber at a time, in
// one of two ways (kv::sharding, measured in docs/kv.md):
//   mutex  each shard is under its own spindle::mutex, taken by the
//          client's fiber (a fiber that waits for it parks; its worker
//          runs other fibers meanwhile);
//   owner  each shard belongs to a fiber of its own, which runs the work
//          clients send it over a channel, one piece at a time, and
//          answers on a channel of the client's.
// Either way, the commands on one key use one shard, and clients of keys
// in different shards never wait for each other.
//
//   kv::store s;
//   s.with_shard("k", [](kv::shard& sh, kv::clock::time_point now) {
//     kv::entry* e = sh.find("k", now);
//     ...
//   });
//
// Expiry is done twice, as Redis does it: lazily, find() removing a key
// whose time has come, and actively, expire_due() (run by the server a
// few times a second) removing keys nobody asks for. Each shard keeps its
// keys with a time to live in order of expiry, so expire_due() removes
// exactly the keys that are due instead of Redis's random samples.
//
// Blocking pops (BLPOP, BRPOP): a client that finds every list it asks
// for empty registers a pop_waiter on each key, in a FIFO queue per key,
// and parks on the waiter's channel. A push to one of those keys hands
// elements straight to the waiters at the front of its queue, as the
// shard's user, so a waiter is served before any later pop, and waiters
// are served in the order they came.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "fiber/fiber.h"
#include "sync/channel.h"
#include "sync/mutex.h"

namespace kv {

using clock = std::chrono::steady_clock;
using list = std::deque<std::string>;

// How a shard is kept to one fiber at a time (see above).
enum class sharding { mutex, owner };

// Which end of a list a pop takes from.
enum class end { left, right };

// Keys with a time to live, in order of expiry.
using deadline_index = std::multimap<clock::time_point, std::string>;

struct entry {
  std::variant<std::string, list> value;
  // When the key expires; time_point::max() for never. Invariant: a key
  // that expires is in its shard's deadlines, at `deadline`.
  clock::time_point expires = clock::time_point::max();
  deadline_index::iterator deadline;
};

// What a blocked pop receives: the key and the element, or `canceled`
// when the client went away (or the server stopped) first.
struct popped {
  bool canceled = false;
  std::string key;
  std::string value;
};

// One client parked in BLPOP or BRPOP, registered on each of its keys.
// Whoever first claims it (a push to one of the keys, the client's
// timeout, or its disconnection) is the only one to answer it, through
// `result`, which has room for that one answer.
struct pop_waiter {
  explicit pop_waiter(kv::end from) : from(from) {}
  // claim() is true for the one caller that may answer.
  bool claim() { return !claimed.exchange(true, std::memory_order_acq_rel); }

  const kv::end from;
  std::atomic<bool> claimed{false};
  spindle::channel<popped> result{1};
};

// A piece of work sent to a shard's owner: run `work`, then send on
// `done`.
struct shard_task {
  absl::FunctionRef<void()> work;
  spindle::channel<bool>* done;
};

// A shard: part of the key space, all of it under `mu` (sharding::mutex),
// or used only by the fiber that reads `inbox` (sharding::owner).
class shard {
 public:
  // Tasks an owner's inbox holds before senders wait.
  static constexpr std::size_t shard_inbox = 64;

  // find() is the live entry of `key`, or nullptr; an entry whose time
  // has come is removed first.
  entry* find(std::string_view key, clock::time_point now);
  // put() is the entry of `key`, created holding `fresh` if there is
  // none (and then without a time to live).
  entry& put(std::string_view key, std::variant<std::string, list> fresh);
  bool erase(std::string_view key);
  // set_expiry() gives `e`, the entry of `key`, a time to live ending at
  // `at` (time_point::max(): none).
  void set_expiry(std::string_view key, entry& e, clock::time_point at);
  // serve_waiters() hands elements of `l`, the list at `key` just pushed
  // to, to the clients blocked on `key`, first come first served; it
  // removes the key if that empties the list.
  void serve_waiters(std::string_view key, list& l);

  spindle::mutex mu;
  spindle::channel<shard_task> inbox{shard_inbox};
  absl::flat_hash_map<std::string, entry> map;
  deadline_index deadlines;
  absl::flat_hash_map<std::string, std::deque<std::shared_ptr<pop_waiter>>> waiters;
};

class store {
 public:
  // Shards: a power of two, as many as needed for workers to rarely meet
  // on one shard (64 is far more than the workers of a usual machine).
  static constexpr int shard_bits = 6;
  static constexpr std::size_t shard_count = std::size_t{1} << shard_bits;

  // With sharding::owner, starts a fiber per shard; on a fiber.
  explicit store(kv::sharding how);
  // Ends the owners' fibers, if any; on a fiber, once nobody uses the store.
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // hash() is the hash of `key` that places it: its top bits pick the
  // shard, and SCAN's cursor is a position in hash order.
  static std::uint64_t hash(std::string_view key);
  shard& shard_of(std::uint64_t h) { return shards_[h >> (64 - shard_bits)]; }

  // on_shard() runs fn(sh, now) as the only user of `sh` (under its lock,
  // or on its owner's fiber), and returns what fn returns. fn must not
  // wait for anything.
  template <class Fn>
  auto on_shard(shard& sh, Fn fn) {
    using result = std::invoke_result_t<Fn, shard&, clock::time_point>;
    if (how_ == sharding::mutex) {
      std::lock_guard lock(sh.mu);
      return fn(sh, clock::now());
    }
    if constexpr (std::is_void_v<result>) {
      run_on_owner(sh, [&] { fn(sh, clock::now()); });
    } else {
      std::optional<result> r;
      run_on_owner(sh, [&] { r.emplace(fn(sh, clock::now())); });
      return std::move(*r);
    }
  }

  // with_shard() is on_shard() on the shard of `key`.
  template <class Fn>
  auto with_shard(std::string_view key, Fn fn) {
    return on_shard(shard_of(hash(key)), std::move(fn));
  }

  // for_each_shard() runs on_shard(sh, fn) on every shard in turn (so it
  // is not one atomic step).
  template <class Fn>
  void for_each_shard(Fn fn) {
    for (shard& sh : shards_) on_shard(sh, fn);
  }

  // scan() appends to `keys` about `count` keys whose hash is `cursor` or
  // more, in hash order, and returns the cursor to go on from (0 when
  // done). A key present for the whole of an iteration is returned at
  // least once, as Redis promises, however the shards grow or shrink.
  std::uint64_t scan(std::uint64_t cursor, std::size_t count, std::vector<std::string>& keys);

  // expire_due() removes the keys whose time has come.
  void expire_due();

  // pop_or_wait() pops from the first of `keys` that holds a non-empty
  // list, into `out`, and returns nullptr; if there is none, it returns a
  // waiter registered on every key. A key that holds something other than
  // a list sets `wrong_type` (and nothing is popped or registered).
  std::shared_ptr<pop_waiter> pop_or_wait(std::span<const std::string> keys, kv::end from,
                                          popped& out, bool& wrong_type);
  // forget() removes `w` from the queues of `keys`, once it is answered.
  void forget(std::span<const std::string> keys, const std::shared_ptr<pop_waiter>& w);

 private:
  // run_on_owner() sends `work` to the owner of `sh` and waits until it
  // has run.
  void run_on_owner(shard& sh, absl::FunctionRef<void()> work);

  const kv::sharding how_;
  shard shards_[shard_count];
  std::vector<spindle::fiber> owners_;  // sharding::owner: shards_[i]'s is owners_[i]
};

}  // namespace kv
