// Real servers for the tests of real client libraries (hiredis, libpq,
// libcurl) under spindle::hook: each helper starts its server as a child
// process on a free port of 127.0.0.1, in a temporary directory of its
// own, waits until the server answers, and in its destructor stops it
// and removes the directory.
//
//   spindle::test::redis_server redis;   // throws if it cannot start
//   redisContext* c = redisConnect("127.0.0.1", redis.port());
//
// A constructor that cannot start its server throws server_error, whose
// message says why: the server's own log, or which Debian package to
// install when a program is missing (scripts/test.sh installs them all).
// Thrown in a test body, GoogleTest reports it as the test's failure.
//
// Where they may be used: construct and destroy a server on a plain
// thread, the test's main thread (not on a fiber): the child is told to
// die with the thread that started it (PR_SET_PDEATHSIG), so that a test
// that crashes leaves no server behind, and waiting for the child to come
// up or go away waits on that thread. The servers' clients may be fibers.
#pragma once

#include <sys/types.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace spindle::test {

// server_error: a server that did not start, or did not stop.
class server_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// child_server: a server process in a process group of its own, and the
// temporary directory it works in. Its destructor stops the server (a
// signal, and a wait for the process to exit, bounded), kills what is
// left of the group, and removes the directory.
class child_server {
 public:
  child_server(const child_server&) = delete;
  child_server& operator=(const child_server&) = delete;
  ~child_server();

  // port() is the TCP port the server listens on, at 127.0.0.1.
  int port() const noexcept { return port_; }
  // dir() is the server's temporary directory.
  const std::string& dir() const noexcept { return dir_; }

 protected:
  // `name` names the server in messages and in the directory's name.
  explicit child_server(std::string_view name);

  // start() starts the server: `args(port)` is its command line for a
  // port, `ready(port)` says whether it answers there, `stop_signal` is
  // what stops it. A server that exits while coming up (another process
  // may take the free port between the look and the server's bind) is
  // tried again on another port, a few times.
  void start(const std::function<std::vector<std::string>(int port)>& args, const std::function<bool(int port)>& ready,
             int stop_signal);

  // run_to_completion() runs a command in dir() (its output to the file
  // `log` there) and waits for it to exit; throws unless it exits with 0.
  void run_to_completion(const std::vector<std::string>& args, const std::string& log) const;

  // run_as() makes the server (and run_to_completion()) run as `user`,
  // who is given dir(). Only for root.
  void run_as(const std::string& user);

  // log_tail() is the end of the log file `log` in dir(), for messages.
  std::string log_tail(const std::string& log) const;

 private:
  pid_t spawn(const std::vector<std::string>& args, const std::string& log) const;
  void stop() noexcept;

  std::string name_;
  std::string user_;
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  int stop_signal_ = 0;
};

// redis_server: redis-server (Debian package redis-server), without
// persistence.
class redis_server : public child_server {
 public:
  redis_server();
};

// postgres_server: PostgreSQL 15 (Debian package postgresql, which
// depends on postgresql-15 in Debian 12; the newest version installed if
// not 15) in a fresh cluster: trust authentication, the
// superuser `postgres`, database `postgres`, up to `max_connections`
// connections, fsync off. As root it runs as the user `postgres` (or
// `nobody`), which PostgreSQL requires (the temporary directory, under
// $TMPDIR or /tmp, is given to that user, who must be able to reach it).
class postgres_server : public child_server {
 public:
  explicit postgres_server(int max_connections = 150);

  // conninfo() is a libpq connection string for this server.
  std::string conninfo() const;

 private:
  int max_connections_;
};

// http_server: a static HTTP/1.0 file server in Python (Debian package
// python3), one thread per request, serving the files put() writes.
class http_server : public child_server {
 public:
  http_server();

  // put() writes a file the server serves at url(name).
  void put(const std::string& name, std::string_view content) const;
  std::string url(const std::string& name) const;

 private:
  std::string root() const;
};

// refused_port() is a port of 127.0.0.1 that refuses connections for as
// long as the object lives: a bound TCP socket that does not listen.
class refused_port {
 public:
  refused_port();
  ~refused_port();
  refused_port(const refused_port&) = delete;
  refused_port& operator=(const refused_port&) = delete;
  int port() const noexcept { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace spindle::test
