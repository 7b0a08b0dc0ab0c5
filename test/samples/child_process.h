// child_process: a program run as a child process by the sample programs'
// tests (sample_programs_test.cpp, http_server_program_test.cpp,
// kv_program_test.cpp), as a user would run it: started with posix_spawnp,
// its stdout and stderr on pipes (or both on one), its lines read with a
// deadline, signalled, waited for; and killed if the test ends first.
//
//   child_process p({HTTP_SERVER_PROGRAM, "--help"});
//   EXPECT_EQ(p.finish(), 0) << p.err();
//   EXPECT_THAT(p.out(), HasSubstr("Usage: "));
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace spindle::test {

// How long a program may take to answer before the test fails (and kills
// it). Generous: a sanitizer build on a loaded machine is slow to start.
inline constexpr std::chrono::seconds child_patience{60};

// A program running as a child process. One thread at a time.
class child_process {
 public:
  // Where the program's stderr goes.
  enum class stderr_to {
    own_pipe,     // a pipe of its own: err()
    stdout_pipe,  // the stdout pipe, interleaved as written: out()
  };

  // Runs argv[0] (a path, or a name looked up on PATH) with `argv`; a
  // failure of the test if it cannot.
  explicit child_process(std::vector<std::string> argv, stderr_to err = stderr_to::own_pipe)
      : argv_(std::move(argv)) {
    int out[2], errp[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0 ||
        (err == stderr_to::own_pipe && ::pipe2(errp, O_CLOEXEC) != 0)) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    const int err_write = err == stderr_to::own_pipe ? errp[1] : out[1];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_write, STDERR_FILENO);
    std::vector<char*> args;
    for (std::string& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (errp[1] >= 0) ::close(errp[1]);
    out_ = out[0];
    err_ = errp[0];
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "cannot run " << argv_[0] << ": " << std::strerror(rc);
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  // Whatever failed, the program does not outlive the test.
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }

  // read_line() is the next line of the program's stdout, without its
  // '\n'; what there is (perhaps "") at end of stream or after patience.
  std::string read_line() {
    const auto give_up = std::chrono::steady_clock::now() + child_patience;
    std::size_t lf;
    while ((lf = out_text_.find('\n')) == std::string::npos &&
           read_some(out_, out_text_, give_up)) {
    }
    std::string line = out_text_.substr(0, lf);
    out_text_.erase(0, lf == std::string::npos ? lf : lf + 1);
    return line;
  }

  void signal(int sig) { EXPECT_EQ(::kill(pid_, sig), 0) << std::strerror(errno); }

  // finish() reads the rest of the program's output and waits for it to
  // exit; after patience it kills it and fails the test. Returns the exit
  // status, -1 if the program did not exit by itself.
  int finish() {
    const auto give_up = std::chrono::steady_clock::now() + child_patience;
    while (read_some(out_, out_text_, give_up) ||
           (err_ >= 0 && read_some(err_, err_text_, give_up))) {
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      ADD_FAILURE() << argv_[0] << " still running after " << child_patience.count() << " s";
      ::kill(pid_, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // What the program wrote to stdout (and to stderr, with
  // stderr_to::stdout_pipe) that read_line() has not taken.
  const std::string& out() const { return out_text_; }
  // What it wrote to stderr, with stderr_to::own_pipe.
  const std::string& err() const { return err_text_; }

 private:
  // Appends what `fd` has to `to`, waiting for it until `give_up`; false
  // at end of stream or once `give_up` has passed.
  static bool read_some(int fd, std::string& to, std::chrono::steady_clock::time_point give_up) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    to.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  std::string out_text_;
  std::string err_text_;
};

// What a program run to its end left: its exit status (-1 if it did not
// exit by itself) and its output.
struct child_result {
  int status;
  std::string out;
  std::string err;  // empty with stderr_to::stdout_pipe
};

// run_to_end() runs a program as child_process does and waits for it to
// exit (killing it, and failing the test, after patience).
inline child_result run_to_end(std::vector<std::string> argv,
                               child_process::stderr_to err = child_process::stderr_to::own_pipe) {
  child_process p(std::move(argv), err);
  const int status = p.finish();
  return {status, p.out(), p.err()};
}

}  // namespace spindle::test
