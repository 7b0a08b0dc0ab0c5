// kv_server: the key-value server of samples/kv/server.h as a program.
// redis-cli, redis-benchmark and Redis client libraries work with it.
//
//   kv_server [--port=6380] [--bind=0.0.0.0] [--workers=N] [--maxclients=10000] [--store=mutex]
//   kv_server --help     (the flags below)
//
// SIGINT or SIGTERM: it stops accepting, closes every connection and
// exits 0. A bad flag, or an address it cannot listen on, is said on
// stderr and exits 2.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "samples/command_line.h"
#include "samples/kv/server.h"
#include "samples/serve.h"

ABSL_FLAG(int, port, 6380, "TCP port to listen on (0: any free port; 6380 so as not to clash with Redis)");
ABSL_FLAG(std::string, bind, "0.0.0.0", "address to listen on (\"::\" for IPv6)");
ABSL_FLAG(unsigned, workers, 0, "worker threads (0: one per hardware thread)");
ABSL_FLAG(std::size_t, maxclients, 10000, "connections at most; beyond, \"-ERR max number of clients reached\"");
ABSL_FLAG(std::int64_t, proto_max_bulk_len, 512LL * 1024 * 1024, "bytes in one bulk argument at most");
ABSL_FLAG(std::int64_t, max_multibulk_len, 1024 * 1024, "arguments of one command at most");
ABSL_FLAG(std::string, store, "mutex",
          "how clients share the key space's shards: \"mutex\" (a Spindle mutex per shard) or "
          "\"owner\" (a fiber per shard, sent work over a channel)");
ABSL_FLAG(int, write_timeout, 10,
          "seconds a write of replies may wait for the client to read before it is disconnected");

namespace {

// Listens and serves until SIGINT or SIGTERM; the exit status. On a fiber.
int serve(const kv::options& o) {
  std::unique_ptr<kv::server> s;
  try {
    s = std::make_unique<kv::server>(o);
  } catch (const std::exception& e) {
    samples::error("cannot listen on " + o.listen + ": " + e.what());
    return samples::exit_usage;
  }
  samples::serve_until_signal("kv_server", *s);
  const kv::stats st = s->stats();
  std::printf("kv_server: stopped; %llu connections served, %llu refused, %llu commands\n",
              static_cast<unsigned long long>(st.accepted), static_cast<unsigned long long>(st.refused),
              static_cast<unsigned long long>(st.commands));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  samples::parse_command_line(argc, argv,
                              "A key-value server that speaks Redis's protocol, on Spindle fibers.\n"
                              "Usage: kv_server [--port=6380] [--bind=0.0.0.0] [--workers=N] [flags below]",
                              __FILE__);
  kv::options o;
  o.listen = samples::listen_address(absl::GetFlag(FLAGS_bind), absl::GetFlag(FLAGS_port));
  o.max_clients = absl::GetFlag(FLAGS_maxclients);
  o.limits.max_bulk = absl::GetFlag(FLAGS_proto_max_bulk_len);
  o.limits.max_args = absl::GetFlag(FLAGS_max_multibulk_len);
  o.write_timeout = std::chrono::seconds(absl::GetFlag(FLAGS_write_timeout));
  const std::string store = absl::GetFlag(FLAGS_store);
  if (store != "mutex" && store != "owner") samples::usage_error("--store must be mutex or owner");
  o.sharding = store == "owner" ? kv::sharding::owner : kv::sharding::mutex;
  if (o.max_clients == 0) samples::usage_error("--maxclients must be at least 1");
  if (o.limits.max_bulk < 1 || o.limits.max_args < 1) {
    samples::usage_error("--proto_max_bulk_len and --max_multibulk_len must be at least 1");
  }
  if (absl::GetFlag(FLAGS_write_timeout) < 1) samples::usage_error("--write_timeout must be at least 1");

  return samples::run_program(absl::GetFlag(FLAGS_workers), [&] { return serve(o); });
}
