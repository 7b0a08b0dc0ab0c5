// The servers of test_servers.h. Each runs as a child of the test,
// started with posix_spawn() (no fork() of a process that has threads)
// through util-linux's setpriv, which gives it the parent-death signal
// and, for PostgreSQL under root, the unprivileged user. Coming up is
// watched by asking the server itself (a PING, a file over HTTP,
// postmaster.pid's status line) in a bounded loop of short sleeps: the
// one place these tests wait on time, for a process outside the runtime.
#include "test_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace spindle::test {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

// How long a server may take to come up or to go away, and a helper to
// run. Generous: a loaded 2-core machine running a sanitizer build.
constexpr auto patience = std::chrono::seconds(30);
constexpr auto initdb_patience = std::chrono::seconds(120);
// Between two looks at a process coming up.
constexpr auto poll_interval = std::chrono::milliseconds(10);
// Tries of a fresh port when a server exits as it comes up.
constexpr int port_tries = 5;

// Where Debian puts each PostgreSQL major version's server programs.
constexpr const char* postgres_versions = "/usr/lib/postgresql";
constexpr int postgres_wanted = 15;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// find_program() is the path of `name` (looked up in PATH when it has no
// slash), or throws naming the Debian package that installs it.
std::string find_program(const std::string& name, const std::string& package) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
  } else if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string d; std::getline(dirs, d, ':');) {
      const std::string candidate = (d.empty() ? "." : d) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  throw server_error(name + " is not installed: install the Debian package " + package +
                     " (scripts/test.sh installs it)");
}

// free_port() is a TCP port of 127.0.0.1 that nothing listened on just now.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw server_error(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = errno_text("bind");
    ::close(fd);
    throw server_error(why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// exchange() connects to `port`, sends `request`, and returns what the
// peer sends back until it closes or `expected_size` bytes came; "" when
// there is no server yet. A stuck peer costs a second, not a hang.
std::string exchange(int port, const std::string& request, std::size_t expected_size) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  const timeval limit{1, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    while (reply.size() < expected_size) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh directory under $TMPDIR (or /tmp).
std::string make_temp_dir(std::string_view name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/spindle-" + std::string(name) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw server_error(errno_text("mkdtemp"));
  return pattern;
}

// exited() reaps `pid` if it has exited: true, with its status.
bool exited(pid_t pid, int* status) {
  const pid_t r = ::waitpid(pid, status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + ::strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

// ---- child_server ----

child_server::child_server(std::string_view name) : name_(name), dir_(make_temp_dir(name)) {}

child_server::~child_server() {
  stop();
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

void child_server::run_as(const std::string& user) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) throw server_error("no user " + user + " to run " + name_ + " as");
  if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw server_error(errno_text("chown"));
  user_ = user;
}

std::string child_server::log_tail(const std::string& log) const {
  constexpr std::size_t tail = 4000;
  const std::string text = read_file(dir_ + "/" + log);
  return text.size() > tail ? "..." + text.substr(text.size() - tail) : text;
}

// spawn() starts `args` through setpriv: in a process group of its own
// (so that whatever it leaves behind can be killed together), killed if
// this thread ends first, as user_ if set; its working directory dir_,
// its input /dev/null, its output appended to `log`.
pid_t child_server::spawn(const std::vector<std::string>& args, const std::string& log) const {
  std::vector<std::string> command = {find_program("setpriv", "util-linux")};
  if (!user_.empty()) {
    command.insert(command.end(), {"--reuid=" + user_, "--regid=" + user_, "--init-groups"});
  }
  // After the change of user: a change of credentials clears it.
  command.insert(command.end(), {"--pdeathsig", "KILL", "--"});
  command.insert(command.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : command) argv.push_back(a.data());
  argv.push_back(nullptr);

  const std::string log_path = dir_ + "/" + log;
  posix_spawn_file_actions_t files;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&files);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&files, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ::posix_spawn_file_actions_adddup2(&files, 1, 2);
  ::posix_spawn_file_actions_addchdir_np(&files, dir_.c_str());
  // A fresh group; no signal blocked or ignored, whatever the runtime's
  // threads have set.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int e = ::posix_spawn(&pid, argv[0], &files, &attr, argv.data(), environ);
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&files);
  if (e != 0) throw server_error("cannot start " + args.front() + ": " + std::strerror(e));
  return pid;
}

void child_server::run_to_completion(const std::vector<std::string>& args, const std::string& log) const {
  const pid_t pid = spawn(args, log);
  const auto give_up = clock::now() + initdb_patience;
  int status = 0;
  while (!exited(pid, &status)) {
    if (clock::now() > give_up) {
      (void)::killpg(pid, SIGKILL);
      (void)::waitpid(pid, &status, 0);
      throw server_error(args.front() + " did not finish within " + std::to_string(initdb_patience.count()) +
                         " s; its output:\n" + log_tail(log));
    }
    std::this_thread::sleep_for(poll_interval);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw server_error(args.front() + " " + describe_status(status) + "; its output:\n" + log_tail(log));
  }
}

void child_server::start(const std::function<std::vector<std::string>(int port)>& args,
                         const std::function<bool(int port)>& ready, int stop_signal) {
  log_ = "server.log";
  stop_signal_ = stop_signal;
  std::string last_exit;
  for (int attempt = 0; attempt < port_tries; ++attempt) {
    const int port = free_port();
    pid_ = spawn(args(port), log_);
    const auto give_up = clock::now() + patience;
    for (;;) {
      if (ready(port)) {
        port_ = port;
        return;
      }
      int status = 0;
      if (exited(pid_, &status)) {
        pid_ = -1;
        last_exit = describe_status(status);
        break;  // perhaps the port was taken: another one
      }
      if (clock::now() > give_up) {
        stop();
        throw server_error(name_ + " did not answer on port " + std::to_string(port) + " within " +
                           std::to_string(patience.count()) + " s; its log:\n" + log_tail(log_));
      }
      std::this_thread::sleep_for(poll_interval);
    }
  }
  throw server_error(name_ + " " + last_exit + " while coming up, " + std::to_string(port_tries) +
                     " times; its log:\n" + log_tail(log_));
}

// stop(): the stop signal; the exit awaited (not reaped: the group's id
// stays ours) for a bounded time; then SIGKILL to the whole group, for
// what is left of it, and the reaping.
void child_server::stop() noexcept {
  if (pid_ <= 0) return;
  (void)::kill(pid_, stop_signal_);
  const auto give_up = clock::now() + patience;
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == pid_) {
      break;
    }
    if (clock::now() > give_up) break;
    std::this_thread::sleep_for(poll_interval);
  }
  (void)::killpg(pid_, SIGKILL);
  int status = 0;
  (void)::waitpid(pid_, &status, 0);
  pid_ = -1;
}

// ---- redis_server ----

redis_server::redis_server() : child_server("redis") {
  const std::string program = find_program("redis-server", "redis-server");
  start(
      [&](int port) {
        return std::vector<std::string>{
            program, "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", dir(),    "--loglevel",         "warning"};
      },
      [](int port) { return exchange(port, "PING\r\n", 7) == "+PONG\r\n"; }, SIGTERM);
}

// ---- postgres_server ----

namespace {

// postgres_bin() is the folder of the server programs of PostgreSQL 15,
// or of the newest version installed if not 15 (Debian's package
// postgresql depends on its release's version); 15's when there is none,
// for the message that says what to install.
std::string postgres_bin() {
  const fs::path base = postgres_versions;
  int chosen = 0;
  std::error_code ignored;
  for (const fs::directory_entry& e : fs::directory_iterator(base, ignored)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!fs::exists(e.path() / "bin" / "postgres", ignored)) continue;
    const int version = std::stoi(name);
    if (chosen != postgres_wanted && (version == postgres_wanted || version > chosen)) chosen = version;
  }
  return (base / std::to_string(chosen != 0 ? chosen : postgres_wanted) / "bin").string();
}

// postgres_ready(): postmaster.pid's status line (the eighth) says
// "ready" and its port line (the fourth) is ours.
bool postgres_ready(const std::string& data, int port) {
  std::stringstream pid_file(read_file(data + "/postmaster.pid"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(pid_file, line);) lines.push_back(line);
  return lines.size() >= 8 && lines[3] == std::to_string(port) && lines[7].starts_with("ready");
}

}  // namespace

postgres_server::postgres_server(int max_connections) : child_server("postgres"), max_connections_(max_connections) {
  const std::string bin = postgres_bin();
  const std::string initdb = find_program(bin + "/initdb", "postgresql");
  const std::string postgres = find_program(bin + "/postgres", "postgresql");
  if (::geteuid() == 0) {
    // PostgreSQL refuses to run as root.
    run_as(::getpwnam("postgres") != nullptr ? "postgres" : "nobody");
  }
  const std::string data = dir() + "/data";
  run_to_completion({initdb, "--pgdata=" + data, "--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C",
                     "--no-sync", "--no-instructions"},
                    "initdb.log");
  const std::vector<std::string> settings = {"max_connections=" + std::to_string(max_connections_), "fsync=off",
                                             "synchronous_commit=off", "full_page_writes=off", "shared_buffers=16MB"};
  start(
      [&](int port) {
        std::vector<std::string> args = {postgres, "-D",        data, "-p", std::to_string(port),
                                         "-h",     "127.0.0.1", "-k", dir()};
        for (const std::string& setting : settings) args.insert(args.end(), {"-c", setting});
        return args;
      },
      [&](int port) { return postgres_ready(data, port); },
      SIGINT);  // a fast shutdown: clients disconnected, no wait for them
}

std::string postgres_server::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port()) +
         " user=postgres dbname=postgres sslmode=disable gssencmode=disable connect_timeout=60";
}

// ---- http_server ----

namespace {

// Python's http.server, as `python3 -m http.server PORT --bind 127.0.0.1
// --directory ROOT` runs it, but with a listen() backlog of 1024 instead
// of socketserver's 5: the tests connect hundreds of clients at once, and
// an overflowing backlog would make some of them wait for the kernel's
// SYN retransmission (a second or more), not hang, but slow.
constexpr const char* http_server_script = R"(
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
)";

}  // namespace

http_server::http_server() : child_server("http") {
  const std::string python = find_program("python3", "python3");
  fs::create_directory(root());
  // What the server must serve for it to count as up: a token of this
  // object's, so that another server on the port does not pass.
  const std::string token = "ready " + std::to_string(::getpid()) + " " + std::to_string(std::random_device{}());
  put(".ready", token);
  start(
      [&](int port) {
        return std::vector<std::string>{python, "-c", http_server_script, std::to_string(port), root()};
      },
      [&](int port) {
        const std::string reply = exchange(port, "GET /.ready HTTP/1.0\r\n\r\n", std::string::npos);
        return reply.starts_with("HTTP/1.0 200") && reply.ends_with("\r\n\r\n" + token);
      },
      SIGTERM);
}

std::string http_server::root() const { return dir() + "/www"; }

void http_server::put(const std::string& name, std::string_view content) const {
  std::ofstream out(root() + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out.flush()) throw server_error("cannot write " + root() + "/" + name);
}

std::string http_server::url(const std::string& name) const {
  return "http://127.0.0.1:" + std::to_string(port()) + "/" + name;
}

// ---- refused_port ----

refused_port::refused_port() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw server_error(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = errno_text("bind");
    ::close(fd_);
    throw server_error(why);
  }
  port_ = ntohs(addr.sin_port);
}

refused_port::~refused_port() { ::close(fd_); }

}  // namespace spindle::test
