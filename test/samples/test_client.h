// test_client: an IRC client for the chat server's tests
// (chat_server_*_test.cpp), on a spindle::connection in a fiber: it writes
// lines and reads the server's, each read with a deadline, so that a
// missing line fails the test instead of hanging it.
#pragma once

#include <gtest/gtest.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "io/address.h"
#include "io/conn.h"
#include "samples/chat/irc.h"

namespace chat::test {

using chat::irc::cat;
using namespace std::chrono_literals;

// How long a client waits for the server's next line (or for a
// connection) before the test fails. Generous: only a server that never
// answers should fail, even on a loaded machine under a sanitizer.
inline constexpr auto patience = 20s;

// The command of a line the server sent (a word or a numeric), after the
// prefix if there is one.
inline std::string_view command_of(std::string_view line) {
  if (!line.empty() && line[0] == ':') {
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return {};
    line.remove_prefix(space + 1);
  }
  return line.substr(0, line.find(' '));
}

// A test's IRC client: writes lines and reads the server's lines, CR LF
// or LF ended, each read within `patience`. A failure (a timeout, a
// connection that fails) is reported once with the last lines read, and
// from then on reads return nothing at once, so that one missing line
// does not make a test wait for every later one. One fiber at a time.
class test_client {
 public:
  explicit test_client(const spindle::address& server, std::string name = "client")
      : name_(std::move(name)) {
    std::error_code ec;
    conn_ = spindle::dial(server, patience, ec);
    if (ec) fail(cat("cannot connect: ", ec.message()));
  }
  // A client on a connection made otherwise.
  test_client(spindle::connection conn, std::string name)
      : name_(std::move(name)), conn_(std::move(conn)) {}
  test_client(test_client&&) = default;
  test_client& operator=(test_client&&) = default;

  const std::string& name() const { return name_; }
  int native_handle() const { return conn_.native_handle(); }
  bool failed() const { return failed_; }
  // ended(): end of stream (or a reset, was_reset()) has been read.
  bool ended() const { return ended_; }
  bool was_reset() const { return reset_; }

  // send() writes `line` and CR LF; write() writes bytes as they are.
  void send(std::string_view line) { write(cat(line, "\r\n")); }
  void write(std::string_view bytes) {
    if (failed_) return;
    std::error_code ec;
    conn_.write_all(bytes, patience, ec);
    if (ec) fail(cat("write failed: ", ec.message()));
  }

  // read_line() is the next line without its line ending; nullopt at end
  // of stream or after a failure.
  std::optional<std::string> read_line() {
    for (;;) {
      const std::size_t lf = buf_.find('\n', pos_);
      if (lf != std::string::npos) {
        std::string line = buf_.substr(pos_, lf - pos_);
        pos_ = lf + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        remember(line);
        return line;
      }
      if (ended_ || failed_) return std::nullopt;
      buf_.erase(0, pos_);
      pos_ = 0;
      char chunk[16 * 1024];
      std::error_code ec;
      const std::size_t n = conn_.read_some(std::span<char>(chunk, sizeof chunk), patience, ec);
      if (ec == std::errc::connection_reset) {
        ended_ = reset_ = true;
      } else if (ec) {
        fail(cat("read failed: ", ec.message()));
        return std::nullopt;
      } else if (n == 0) {
        ended_ = true;
      } else {
        buf_.append(chunk, n);
      }
    }
  }

  // expect_line() is the next line; a failure (and "") at end of stream.
  std::string expect_line() {
    std::optional<std::string> line = read_line();
    if (!line) {
      if (!failed_) fail("end of stream where a line was expected");
      return {};
    }
    return *line;
  }

  // read_until() reads lines up to and including the first that `done`
  // accepts; a failure if the stream ends first.
  template <class Pred>
  std::vector<std::string> read_until(Pred done, std::string_view what) {
    std::vector<std::string> lines;
    while (std::optional<std::string> line = read_line()) {
      lines.push_back(std::move(*line));
      if (done(lines.back())) return lines;
    }
    if (!failed_) fail(cat("end of stream before ", what));
    return lines;
  }
  std::vector<std::string> read_until_command(std::string_view command) {
    return read_until([&](const std::string& l) { return command_of(l) == command; }, command);
  }

  // sync() sends a PING and reads up to its PONG: what comes before it
  // is everything the server sent this client on account of earlier lines.
  // Returns those lines.
  std::vector<std::string> sync() {
    const std::string token = cat("sync-", ++syncs_);
    send(cat("PING :", token));
    auto is_pong = [&](const std::string& l) {
      return command_of(l) == "PONG" && l.ends_with(cat(" :", token));
    };
    std::vector<std::string> lines = read_until(is_pong, cat("PONG :", token));
    if (!lines.empty() && is_pong(lines.back())) lines.pop_back();
    return lines;
  }

  // register_as() sends NICK and USER (user `nick`, real name "Real
  // <nick>") and reads up to the end of the MOTD. Returns those lines.
  std::vector<std::string> register_as(std::string_view nick) {
    send(cat("NICK ", nick));
    send(cat("USER ", nick, " 0 * :Real ", nick));
    std::vector<std::string> lines = read_until(
        [](const std::string& l) { return command_of(l) == "376" || command_of(l) == "422"; },
        "the end of the MOTD");
    if (!lines.empty() && command_of(lines.front()) != "001") {
      fail(cat("registering as ", nick, " got ", lines.front()));
    }
    return lines;
  }

  // join() joins one channel and reads up to the end of its NAMES.
  std::vector<std::string> join(std::string_view channel) {
    send(cat("JOIN ", channel));
    return read_until(
        [&](const std::string& l) {
          return command_of(l) == "366" && l.find(cat(" ", channel, " :")) != std::string::npos;
        },
        cat("366 for ", channel));
  }

  // read_to_end() reads the lines up to end of stream (or a reset).
  std::vector<std::string> read_to_end() {
    std::vector<std::string> lines;
    while (std::optional<std::string> line = read_line()) lines.push_back(std::move(*line));
    return lines;
  }

  // reset() closes with SO_LINGER {1, 0}: the server gets a reset.
  void reset() {
    const linger lg{1, 0};
    EXPECT_EQ(::setsockopt(conn_.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0)
        << std::strerror(errno);
    close();
  }
  void close() {
    std::error_code ignored;
    conn_.close(ignored);
  }
  // shutdown_write() ends what this client sends; it can still read.
  void shutdown_write() {
    std::error_code ec;
    conn_.shutdown(spindle::shutdown_type::write, ec);
    if (ec) fail(cat("shutdown failed: ", ec.message()));
  }

 private:
  void fail(std::string_view what) {
    failed_ = true;
    std::string recent;
    for (const std::string& l : recent_) recent += cat("\n  ", l);
    ADD_FAILURE() << name_ << ": " << what << "; the last lines it read:" << recent;
  }
  void remember(const std::string& line) {
    if (recent_.size() == 8) recent_.pop_front();
    recent_.push_back(line.size() > 200 ? line.substr(0, 200) + "..." : line);
  }

  std::string name_;
  spindle::connection conn_;
  std::string buf_;  // what was read; lines before pos_ are consumed
  std::size_t pos_ = 0;
  bool ended_ = false;
  bool reset_ = false;
  bool failed_ = false;
  int syncs_ = 0;
  std::deque<std::string> recent_;
};

}  // namespace chat::test
