// kv::detail::server_impl and session: the key-value server's state and a
// connection's session, behind kv::server (server.h). Private to
// samples/kv. Defined in two files:
//   server.cpp    accepting, stopping, counters, and a session's loop:
//                 read a batch, run its commands, write the replies;
//   commands.cpp  the commands, over kv::store.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "io/conn.h"
#include "io/listener.h"
#include "samples/kv/server.h"
#include "samples/kv/store.h"
#include "sync/channel.h"
#include "sync/mutex.h"
#include "sync/wait_group.h"

namespace kv::detail {

// Bytes of a client's requests the server holds at most (Redis's
// client-query-buffer-limit): past it the client is disconnected.
inline constexpr std::size_t max_query_buffer = std::size_t{1} << 30;

class server_impl {
 public:
  explicit server_impl(options o);

  void serve();
  void stop();
  kv::stats stats();

  const options opts_;
  spindle::listener listener_;
  const int port_ = listener_.local_address().port();  // for INFO, once the listener is closed too
  const clock::time_point started_ = clock::now();
  kv::store store_{opts_.sharding};
  std::atomic<bool> stopping_{false};
  // Closed by serve() once every session has ended: the expiry fiber's
  // signal to end.
  spindle::channel<int> expiry_stop_{0};

  // The open connections, so that serve() can end their sessions at
  // stop. A session removes its own before it closes it.
  spindle::mutex conns_mu_;
  absl::flat_hash_set<spindle::connection*> conns_;  // guarded by conns_mu_
  spindle::wait_group sessions_;

  std::atomic<std::size_t> clients_{0};
  std::atomic<std::size_t> blocked_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> protocol_errors_{0};
  std::atomic<std::uint64_t> write_timeouts_{0};
  std::atomic<std::uint64_t> commands_{0};
};

// A client's session, on its own fiber: reads what the client sent,
// runs each complete command in it, gathers their replies in `out` and
// writes them with one write per batch.
class session {
 public:
  session(server_impl& srv, spindle::connection& conn) : srv(srv), conn(conn) {}
  void run();  // until the client leaves, is dropped, or the server stops

  // execute() runs one command, appending its reply to `out`
  // (commands.cpp).
  void execute(std::vector<std::string>& args);
  // flush() writes `out`; false if the client must be dropped.
  bool flush();

  server_impl& srv;
  spindle::connection& conn;
  // Bytes read and not yet parsed (BLPOP's disconnection watcher reads
  // into it too, while the session is parked).
  std::string in;
  std::string out;  // replies not yet written
  bool closing = false;  // QUIT, or a client gone while blocked
};

}  // namespace kv::detail
