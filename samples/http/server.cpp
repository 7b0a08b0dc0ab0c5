// The HTTP server (server.h). Each connection is one fiber running
// converse(): wait for a request, read its header into the connection's
// buffer and let Beast's parser take it, check it, read its body, answer,
// and go round again. Responses to pipelined requests are gathered in one
// buffer while the read buffer still holds the next request, and written
// with one write_all before the fiber next waits to read (or sends a
// file), so a batch of pipelined requests costs one write.
//
// Errors: a request whose framing cannot be trusted (a malformed header,
// a body over the limit, request smuggling) gets its status and
// "Connection: close", and the connection closes after a lingering read
// (close_gracefully); a request the server only declines (404, 405, ...)
// keeps the connection when it has no body.
//
// Stopping: stop() closes the listener and ends the wait of every
// connection that is waiting for a request (session::idle, under mu_);
// the others finish the request they are on, answer it with
// "Connection: close", and close.
#include "samples/http/server.h"

#include <limits.h>
#include <stdlib.h>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include "fiber/fiber.h"
#include "io/conn.h"
#include "io/file.h"
#include "io/listener.h"
#include "samples/http/file_cache.h"
#include "samples/http/static_files.h"
#include "sched/blocking.h"
#include "sync/wait_group.h"

namespace httpd::detail {
namespace {

namespace http = boost::beast::http;
using boost::beast::iequals;
using request_parser = http::request_parser<http::string_body>;
using request = http::request<http::string_body>;

// The body of "/", the benchmark route.
constexpr std::string_view hello = "Hello, World!\n";
// Responses gathered for pipelined requests are written once they reach
// this size, even while more requests are waiting in the read buffer.
constexpr std::size_t flush_threshold = 64 * 1024;
// A connection's read buffer starts at this size and grows, for a long
// header, up to the header limits.
constexpr std::size_t initial_buffer = 4096;
// A file is sent in pieces of this size, each with its own send_timeout:
// a slow client of a big file is cut off only once it stops reading.
constexpr std::size_t file_piece = 1024 * 1024;
// A file body up to this size is copied into the response buffer, not
// sent with sendfile: one write instead of a write and a sendfile, and
// the page cache's copy is as cheap as the socket's.
constexpr std::size_t small_file = 16 * 1024;

// The routes: "/", "/echo", and everything else a file.
enum class route { hello, echo, file };

// One connection of converse().
struct session {
  explicit session(spindle::connection c) : conn(std::move(c)) {}
  spindle::connection conn;
  std::vector<char> in = std::vector<char>(initial_buffer);
  std::size_t begin = 0;  // in[begin, end) has been read and not yet parsed
  std::size_t end = 0;
  std::string out;              // responses not yet written
  // Waiting for a request's first byte. Its own lock (never held across a
  // wait), not the server's: every request takes it twice, and a lock
  // shared by all connections would be a line every worker writes.
  std::mutex idle_mu;
  bool idle = false;  // guarded by idle_mu
  std::time_t date_second = 0;  // the second `date` spells
  std::string date;
};

// The bytes read and not yet parsed, as Beast's put() takes them.
boost::asio::const_buffer unparsed(const session& s) {
  return {s.in.data() + s.begin, s.end - s.begin};
}

// The Date header's value, formatted once a second per connection.
std::string_view date_of(session& s) {
  const std::time_t now = std::time(nullptr);
  if (now != s.date_second) {
    s.date = http_date(now);
    s.date_second = now;
  }
  return s.date;
}

// Appends a response's status line and the headers every response has.
void start_response(session& s, http::status status, bool keep_alive) {
  s.out += "HTTP/1.1 ";
  s.out += std::to_string(static_cast<unsigned>(status));
  s.out += ' ';
  s.out += http::obsolete_reason(status);
  s.out += "\r\nServer: spindle\r\nDate: ";
  s.out += date_of(s);
  s.out += keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n";
}

// Appends a whole response with `body` (only its length for HEAD).
// `headers` are more header lines, each ending in CRLF.
void append_response(session& s, http::status status, bool keep_alive, bool head,
                     std::string_view type, std::string_view body, std::string_view headers = {}) {
  start_response(s, status, keep_alive);
  s.out += "Content-Type: ";
  s.out += type;
  s.out += "\r\n";
  s.out += headers;
  s.out += "Content-Length: ";
  s.out += std::to_string(body.size());
  s.out += "\r\n\r\n";
  if (!head) s.out += body;
}

// Appends an error response, a small HTML page as nginx sends.
void append_error(session& s, http::status status, bool keep_alive, bool head,
                  std::string_view headers = {}) {
  std::string title = std::to_string(static_cast<unsigned>(status));
  title += ' ';
  title += http::obsolete_reason(status);
  const std::string page =
      "<html><head><title>" + title + "</title></head><body><h1>" + title + "</h1></body></html>\n";
  append_response(s, status, keep_alive, head, "text/html", page, headers);
}

// The status for a request that Beast's parser rejected; `line` is its
// first line, for a bad version: Beast takes only HTTP/1.0 and 1.1, and a
// well-formed other version gets 505.
http::status status_for(const boost::beast::error_code& ec, std::string_view line) {
  if (ec == http::error::header_limit) return http::status::request_header_fields_too_large;
  if (ec == http::error::body_limit) return http::status::payload_too_large;
  if (ec == http::error::bad_version) {
    line = line.substr(0, line.find_first_of("\r\n"));
    const std::string_view v = line.substr(line.rfind(' ') + 1);  // "HTTP/2.0"
    if (v.size() == 8 && v.starts_with("HTTP/") && std::isdigit(static_cast<unsigned char>(v[5])) &&
        v[6] == '.' && std::isdigit(static_cast<unsigned char>(v[7]))) {
      return http::status::http_version_not_supported;
    }
  }
  return http::status::bad_request;
}

// Checks what Beast leaves to the server in a parsed header (RFC 9112):
// Host and the transfer codings; ok if the request can be read.
http::status check_header(const request_parser& p) {
  const request& req = p.get();
  const std::size_t hosts = req.count(http::field::host);
  if (hosts > 1 || (hosts == 0 && req.version() == 11)) return http::status::bad_request;
  if (req.count(http::field::transfer_encoding) != 0) {
    // HTTP/1.0 has no transfer codings; one that does not end in chunked
    // leaves the body's length unknown; chunked after another coding
    // means a coding the server does not implement.
    if (req.version() == 10 || !p.chunked()) return http::status::bad_request;
    if (!iequals(req[http::field::transfer_encoding], "chunked")) {
      return http::status::not_implemented;
    }
  }
  return http::status::ok;
}

// The path of a request target, without query and fragment; the
// absolute form ("http://host/path") gives its path. Empty if there is
// none (a target like "*" or "x").
std::string_view path_of(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() > scheme.size() && iequals(target.substr(0, scheme.size()), scheme)) {
      const std::size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? "/" : target.substr(slash);
    }
  }
  if (target.empty() || target[0] != '/') return {};
  return target.substr(0, target.find_first_of("?#"));
}

// realpath(3) on the blocking pool: `p` with every symlink, "." and ".."
// resolved; the errno value on failure.
std::pair<std::string, int> canonical(const std::string& p) {
  return spindle::blocking([&]() -> std::pair<std::string, int> {
    char resolved[PATH_MAX];
    if (::realpath(p.c_str(), resolved) == nullptr) return {{}, errno};
    return {resolved, 0};
  });
}

// The status for a failed realpath or open.
http::status status_for_errno(int err) {
  return err == EACCES ? http::status::forbidden : http::status::not_found;
}

}  // namespace

class server_impl {
 public:
  explicit server_impl(options o)
      : o_(std::move(o)),
        buffer_limit_(
            std::max(std::max(o_.max_header_bytes, o_.max_uri_bytes) + 1, initial_buffer)),
        listener_(spindle::listen(o_.listen)) {
    if (!o_.root.empty()) {
      root_ = spindle::blocking([&] {
                std::filesystem::path root = std::filesystem::canonical(o_.root);
                if (!std::filesystem::is_directory(root)) {
                  throw std::filesystem::filesystem_error(
                      "not a directory", o_.root, std::make_error_code(std::errc::not_a_directory));
                }
                return root;
              }).string();
    }
  }

  void serve() {
    while (!stopping_.load()) {
      std::error_code ec;
      spindle::connection c = listener_.accept(ec);
      if (ec) continue;  // stop() closed the listener, or the client gave up
      if (connections_.load() >= o_.max_connections) {
        refused_.fetch_add(1);
        continue;  // `c` closes here
      }
      connections_.fetch_add(1);
      accepted_.fetch_add(1);
      sessions_done_.add();
      spindle::go([this, c = std::move(c)]() mutable {
        {
          session s(std::move(c));
          enroll(s, true);
          converse(s);
          enroll(s, false);
        }  // the connection closes here, before it stops counting
        connections_.fetch_sub(1);
        sessions_done_.done();
      });
    }
    sessions_done_.wait();
  }

  void stop() {
    std::lock_guard lock(mu_);
    if (stopping_.exchange(true)) return;
    std::error_code ignored;
    listener_.close(ignored);  // serve()'s accept wakes with operation_canceled
    // Ends the wait of each connection waiting for its next request; see
    // await_request() for one whose request begins meanwhile.
    for (session* s : sessions_) {
      std::lock_guard idle_lock(s->idle_mu);
      if (s->idle) s->conn.set_read_deadline(std::chrono::nanoseconds(0));
    }
  }

  spindle::address local_address() const { return listener_.local_address(); }

  httpd::stats stats() const {
    return {connections_.load(), accepted_.load(), refused_.load(), requests_.load(), files_.size()};
  }

 private:
  void enroll(session& s, bool in) {
    std::lock_guard lock(mu_);
    if (in) {
      sessions_.insert(&s);
    } else {
      sessions_.erase(&s);
    }
  }

  // converse() answers the requests of one connection until it is to
  // close.
  void converse(session& s) {
    // The first request's header is due header_timeout after the accept.
    spindle::deadline header_due(o_.header_timeout);
    for (bool first = true;; first = false) {
      if (s.begin == s.end &&
          !await_request(s, first ? header_due : spindle::deadline(o_.keepalive_timeout))) {
        return;
      }
      if (!first) header_due = spindle::deadline(o_.header_timeout);

      // The header: Beast's parser wants it whole in one buffer, and
      // consumes nothing until it is (need_more).
      request_parser p;
      p.header_limit(
          static_cast<std::uint32_t>(std::min<std::size_t>(o_.max_header_bytes, UINT32_MAX)));
      p.body_limit(o_.max_body_bytes);
      boost::beast::error_code ec;
      for (;;) {
        if (request_line_too_long(s)) return reject(s, http::status::uri_too_long);
        s.begin += p.put(unparsed(s), ec);
        if (ec != http::error::need_more) break;
        // Closed, failed or past the deadline: close without an answer,
        // as nginx does when a header is late.
        if (!fill(s, header_due)) return;
      }
      if (ec) return reject(s, status_for(ec, {s.in.data() + s.begin, s.end - s.begin}));
      if (http::status st = check_header(p); st != http::status::ok) return reject(s, st);

      request& req = p.get();
      const bool head = req.method() == http::verb::head;
      const bool has_body = p.chunked() || p.content_length().value_or(0) > 0;
      const std::string_view path = path_of(req.target());
      const route r = path == "/" ? route::hello : path == "/echo" ? route::echo : route::file;
      if (path.empty()) return reject(s, http::status::bad_request);
      // A method the route does not take, declined before the body is
      // read: the connection can go on only if there is no body to skip.
      if (r != route::echo && req.method() != http::verb::get && !head) {
        const bool keep = !has_body && req.keep_alive() && !stopping_.load();
        append_error(s, http::status::method_not_allowed, keep, head, "Allow: GET, HEAD\r\n");
        requests_.fetch_add(1);
        if (!keep) return close_gracefully(s);
        continue;
      }

      // The body, after 100 Continue if the client waits for one.
      if (has_body && req.version() == 11 && iequals(req[http::field::expect], "100-continue")) {
        s.out += "HTTP/1.1 100 Continue\r\n\r\n";
        if (!flush(s)) return;
      }
      p.eager(true);
      while (!p.is_done()) {
        if (s.begin < s.end) {
          s.begin += p.put(unparsed(s), ec);
          if (!ec) continue;
          if (ec != http::error::need_more) return reject(s, status_for(ec, {}));
        }
        if (!fill(s, o_.body_timeout)) return;  // gone, or too slow: close
      }

      const bool keep = req.keep_alive() && !stopping_.load();
      switch (r) {
        case route::hello:
          append_response(s, http::status::ok, keep, head, "text/plain", hello);
          break;
        case route::echo:
          append_response(s, http::status::ok, keep, head, "application/octet-stream", req.body());
          break;
        case route::file:
          if (!serve_file(s, req, path, keep, head)) return close_gracefully(s);
          break;
      }
      requests_.fetch_add(1);
      if (!keep) return close_gracefully(s);
      if (s.out.size() >= flush_threshold && !flush(s)) return;
    }
  }

  // await_request() waits until `d` for the first byte of a request, as an
  // idle connection that stop() may close; false if there is none.
  bool await_request(session& s, spindle::deadline d) {
    if (!flush(s)) return false;
    {
      // stop() sets stopping_ before it looks at each session's `idle`
      // under that session's lock: it sees this one idle, or this sees it.
      std::lock_guard lock(s.idle_mu);
      if (stopping_.load()) return false;
      s.idle = true;
    }
    const bool got = fill(s, d);
    std::lock_guard lock(s.idle_mu);
    s.idle = false;
    // stop() may have cut the read deadline short after the byte came;
    // the request has begun now, so it is read and answered.
    if (got && stopping_.load()) s.conn.set_read_deadline({});
    return got;
  }

  // fill() writes what is gathered in s.out, then reads more into s.in
  // until `d`; false at end of stream, on an error or timeout, or when the
  // buffer is full at its limit.
  bool fill(session& s, spindle::deadline d) {
    if (!flush(s)) return false;
    if (s.begin == s.end) s.begin = s.end = 0;
    if (s.end == s.in.size()) {
      if (s.begin > 0) {
        std::memmove(s.in.data(), s.in.data() + s.begin, s.end - s.begin);
        s.end -= s.begin;
        s.begin = 0;
      } else if (s.in.size() < buffer_limit_) {
        s.in.resize(std::min(s.in.size() * 2, buffer_limit_));
      } else {
        return false;  // a chunk header longer than any header may be
      }
    }
    std::error_code ec;
    const std::size_t n =
        s.conn.read_some(std::span<char>(s.in.data() + s.end, s.in.size() - s.end), d, ec);
    s.end += n;
    return n > 0;
  }

  // flush() writes the responses gathered in s.out; false if it cannot.
  bool flush(session& s) {
    if (s.out.empty()) return true;
    std::error_code ec;
    s.conn.write_all(s.out, o_.send_timeout, ec);
    s.out.clear();
    return !ec;
  }

  // request_line_too_long() says whether the unparsed bytes begin with a
  // request line longer than max_uri_bytes (414), ended or not.
  bool request_line_too_long(const session& s) const {
    const std::size_t n = std::min(s.end - s.begin, o_.max_uri_bytes + 2);  // + CR LF
    return n == o_.max_uri_bytes + 2 && std::memchr(s.in.data() + s.begin, '\n', n) == nullptr;
  }

  // reject() answers a request whose bytes cannot be trusted any further
  // with `status`, and closes the connection.
  void reject(session& s, http::status status) {
    append_error(s, status, false, false);
    requests_.fetch_add(1);
    close_gracefully(s);
  }

  // close_gracefully() writes what is gathered, ends the writing half,
  // and reads and drops what the client still sends until it closes or
  // linger_timeout passes (nginx's lingering close): closing with unread
  // bytes would reset the connection, and the client might lose the
  // response before it read it.
  void close_gracefully(session& s) {
    if (!flush(s)) return;
    std::error_code ec;
    s.conn.shutdown(spindle::shutdown_type::write, ec);
    const spindle::deadline until(o_.linger_timeout);
    char dropped[4096];
    while (!ec && s.conn.read_some(std::span<char>(dropped), until, ec) > 0) {
    }
  }

  // open_under_root() opens the file at `rel` under the root, refusing
  // (403) one whose real path, symlinks resolved, is outside the root.
  http::status open_under_root(const std::string& rel, spindle::file& f, spindle::file_status& st) {
    const auto [real, err] = canonical(root_ + rel);
    if (err != 0) return status_for_errno(err);
    const bool inside = real.starts_with(root_) &&
                        (real.size() == root_.size() || real[root_.size()] == '/' || root_ == "/");
    if (!inside) {
      return http::status::forbidden;
    }
    std::error_code ec;
    f = spindle::file::open(real, spindle::open_mode::read, ec);
    if (!ec) st = f.stat(ec);
    return ec ? status_for_errno(ec.value()) : http::status::ok;
  }

  // serve_file() answers a GET or HEAD of a file under the root; false if
  // the connection is to close: after a 400 (as nginx closes after one),
  // or when the file could not be sent whole.
  bool serve_file(session& s, const request& req, std::string_view path, bool keep, bool head) {
    const std::optional<std::string> rel = decode_path(path);
    if (!rel) {
      append_error(s, http::status::bad_request, false, head);
      return false;
    }
    // The file and its status: from the open-file cache, else opened now
    // (and cached).
    std::shared_ptr<open_file> cached = files_.find(*rel);
    if (!cached) {
      spindle::file f;
      spindle::file_status st;
      http::status status = root_.empty() ? http::status::not_found : open_under_root(*rel, f, st);
      if (status == http::status::ok && st.type == std::filesystem::file_type::directory) {
        if (rel->back() != '/') {  // "/dir" -> "/dir/", so that relative links work
          append_error(s, http::status::moved_permanently, keep, head,
                       "Location: " + std::string(path) + "/\r\n");
          return true;
        }
        status = open_under_root(*rel + "index.html", f, st);
        if (status == http::status::not_found) status = http::status::forbidden;  // no listing
      }
      if (status == http::status::ok && st.type != std::filesystem::file_type::regular) {
        status = http::status::not_found;
      }
      if (status != http::status::ok) {
        append_error(s, status, keep, head);
        return true;
      }
      auto opened = std::make_shared<open_file>(open_file{std::move(f), st});
      files_.put(*rel, opened);
      cached = std::move(opened);
    }
    spindle::file& f = cached->f;
    const spindle::file_status& st = cached->st;

    const std::time_t mtime =
        std::chrono::system_clock::to_time_t(std::chrono::file_clock::to_sys(st.last_write_time));
    const std::string last_modified = "Last-Modified: " + http_date(mtime) + "\r\n";
    // If-Modified-Since: 304 when it is the file's time exactly, as
    // nginx's default (if_modified_since exact).
    if (const auto it = req.find(http::field::if_modified_since); it != req.end()) {
      if (parse_http_date(it->value()) == mtime) {
        start_response(s, http::status::not_modified, keep);
        s.out += last_modified;
        s.out += "\r\n";
        return true;
      }
    }
    byte_range range;
    if (const auto it = req.find(http::field::range); it != req.end()) {
      range = parse_range(it->value(), st.size);
    }
    if (range.what == byte_range::whole) range.last = st.size == 0 ? 0 : st.size - 1;
    if (range.what == byte_range::unsatisfiable) {
      append_error(s, http::status::range_not_satisfiable, keep, head,
                   "Content-Range: bytes */" + std::to_string(st.size) + "\r\n");
      return true;
    }
    const std::uint64_t count = st.size == 0 ? 0 : range.last - range.first + 1;
    start_response(
        s, range.what == byte_range::partial ? http::status::partial_content : http::status::ok,
        keep);
    s.out += "Content-Type: ";
    s.out += content_type(*rel);
    s.out += "\r\n";
    s.out += last_modified;
    s.out += "Accept-Ranges: bytes\r\n";
    if (range.what == byte_range::partial) {
      s.out += "Content-Range: bytes " + std::to_string(range.first) + "-" +
               std::to_string(range.last) + "/" + std::to_string(st.size) + "\r\n";
    }
    s.out += "Content-Length: " + std::to_string(count) + "\r\n\r\n";
    if (head || count == 0) return true;

    // A small body goes into the responses being gathered, read on this
    // worker from the page cache (file::pread skips the pool when it can):
    // one write for the header and body, and for pipelined responses
    // around them. A larger one goes from the file to the socket
    // (sendfile), after the responses gathered before it.
    if (count <= small_file) {
      const std::size_t at = s.out.size();
      s.out.resize(at + count);
      std::error_code ec;
      const std::size_t n = f.pread(s.out.data() + at, count, range.first, ec);
      s.out.resize(at + n);
      return n == count;  // else the file shrank: the response ends short, and the connection
    }
    if (!flush(s)) return false;
    for (std::uint64_t offset = range.first, left = count; left > 0;) {
      std::error_code ec;
      const std::size_t n = s.conn.send_file(
          f, offset, static_cast<std::size_t>(std::min<std::uint64_t>(left, file_piece)),
          o_.send_timeout, ec);
      if (ec || n == 0) return false;  // the client is gone, or the file shrank
      offset += n;
      left -= n;
    }
    return true;
  }

  const options o_;
  const std::size_t buffer_limit_;  // the most a read buffer grows to
  std::string root_;                // o_.root, canonical; empty: no files
  file_cache files_{o_.open_file_cache, o_.open_file_cache_valid};
  spindle::listener listener_;
  std::atomic<bool> stopping_{false};
  spindle::wait_group sessions_done_;  // one count per connection fiber
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::mutex mu_;                          // never held across a wait
  std::unordered_set<session*> sessions_;  // guarded by mu_
};

}  // namespace httpd::detail

namespace httpd {

server::server(options opts) : impl_(std::make_unique<detail::server_impl>(std::move(opts))) {}
server::~server() = default;
void server::serve() { impl_->serve(); }
void server::stop() { impl_->stop(); }
spindle::address server::local_address() const { return impl_->local_address(); }
httpd::stats server::stats() const { return impl_->stats(); }

}  // namespace httpd
