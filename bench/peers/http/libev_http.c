/* libev_http: a minimal HTTP/1.1 server written directly on libev
 * callbacks, the C baseline that Spindle's HTTP sample (samples/http) is
 * compared against in bench/run_http_bench.sh. As fast as a reasonable
 * event-loop server gets, not a general web server:
 *
 *   - GET / answers "Hello, World!\n" (200, Content-Type: text/plain,
 *     Content-Length: 14, a Date header formatted at most once a second);
 *     any other target answers 404 "Not Found\n". The method is not
 *     checked and request bodies are not supported (a request is its
 *     header block, up to "\r\n\r\n"; Content-Length: 0 requests only).
 *   - keep-alive: the connection stays open unless the request says
 *     "Connection: close" or is HTTP/1.0 without "Connection: keep-alive".
 *   - pipelining: every complete request in the read buffer is answered,
 *     and all the answers go out with one send().
 *   - a 4 KiB read buffer per connection (a longer header block closes the
 *     connection); an unsent rest of the answers is kept per connection and
 *     the watcher switches to EV_WRITE (no reading meanwhile) until it is
 *     flushed.
 *   - THREADS event loops (default 1), each on its own thread with its own
 *     listening socket on the same port (SO_REUSEPORT: the kernel spreads
 *     new connections over them by a hash of the addresses).
 *
 * Listens on 127.0.0.1, sets TCP_NODELAY.
 * Usage: libev_http PORT [THREADS]; prints "listening PORT" when ready.
 */
#define _GNU_SOURCE /* accept4, memmem */
#include <ev.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kReadBuf = 4096, kOutBuf = 256 * 1024 };

static const char kHelloBody[] = "Hello, World!\n";
static const char kNotFoundBody[] = "Not Found\n";

struct worker {
  struct ev_loop *loop;
  ev_io accept_io;
  time_t date_sec; /* second that `date` was formatted for */
  char date[40];   /* "Sun, 06 Dec 2026 14:39:51 GMT" */
  char *out;       /* kOutBuf bytes: the answers of one read */
  pthread_t thread;
};

struct conn {
  ev_io io; /* first, so that a watcher pointer is a conn pointer */
  struct worker *w;
  char *pending; /* unsent rest of the answers, or NULL */
  size_t pending_len, pending_off;
  int close_after; /* close once `pending` is flushed */
  size_t len;      /* bytes in buf */
  char buf[kReadBuf];
};

static const char *cached_date(struct worker *w) {
  time_t now = (time_t)ev_now(w->loop);
  if (now != w->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    w->date_sec = now;
  }
  return w->date;
}

static void conn_close(struct conn *c) {
  ev_io_stop(c->w->loop, &c->io);
  close(c->io.fd);
  free(c->pending);
  free(c);
}

static void set_events(struct conn *c, int events) {
  ev_io_stop(c->w->loop, &c->io);
  ev_io_set(&c->io, c->io.fd, events);
  ev_io_start(c->w->loop, &c->io);
}

/* Writes buf[0..len); returns how much was written, or -1 on error. */
static ssize_t write_some(int fd, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) return -1;
    off += (size_t)n;
  }
  return (ssize_t)off;
}

/* Whether the header block [p, end) asks to close the connection. */
static int wants_close(const char *p, const char *end) {
  const char *eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol) return 1;
  int http10 = eol - p >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
  int close_it = http10;
  for (const char *line = eol + 1; line < end; line = eol + 1) {
    eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) break;
    if (eol - line > 11 && strncasecmp(line, "connection:", 11) == 0) {
      const char *v = line + 11;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      if (eol - v >= 5 && strncasecmp(v, "close", 5) == 0) close_it = 1;
      if (eol - v >= 10 && strncasecmp(v, "keep-alive", 10) == 0) close_it = 0;
    }
  }
  return close_it;
}

/* Appends the answer to the request whose header block is [p, end) to
 * out + *n; returns whether the connection is to be closed after it. */
static int answer(struct worker *w, const char *p, const char *end, size_t *n) {
  const char *sp = memchr(p, ' ', (size_t)(end - p));
  int root = sp && end - sp >= 3 && sp[1] == '/' && (sp[2] == ' ' || sp[2] == '?');
  const char *body = root ? kHelloBody : kNotFoundBody;
  int r = snprintf(w->out + *n, kOutBuf - *n,
                   "HTTP/1.1 %s\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   root ? "200 OK" : "404 Not Found", cached_date(w), strlen(body), body);
  *n += (size_t)r;
  return wants_close(p, end);
}

static void conn_cb(struct ev_loop *loop, ev_io *io, int revents) {
  (void)loop;
  struct conn *c = (struct conn *)io;
  if (revents & EV_WRITE) {
    ssize_t n = write_some(io->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
    if (n < 0) {
      conn_close(c);
      return;
    }
    c->pending_off += (size_t)n;
    if (c->pending_off == c->pending_len) {
      free(c->pending);
      c->pending = NULL;
      if (c->close_after) {
        conn_close(c);
        return;
      }
      set_events(c, EV_READ);
    }
    return;
  }
  ssize_t got = recv(io->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (got <= 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)got;
  struct worker *w = c->w;
  size_t out = 0, start = 0;
  int close_it = 0;
  const char *end;
  /* A longest answer is < 200 bytes and a shortest request 18, so out
   * cannot overflow: kReadBuf / 18 * 200 < kOutBuf. */
  while (!close_it && (end = memmem(c->buf + start, c->len - start, "\r\n\r\n", 4)) != NULL) {
    close_it = answer(w, c->buf + start, end + 4, &out);
    start = (size_t)(end + 4 - c->buf);
  }
  if (start > 0) {
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
  } else if (c->len == sizeof c->buf) {
    conn_close(c); /* header block too long */
    return;
  }
  if (out == 0) return;
  ssize_t sent = write_some(io->fd, w->out, out);
  if (sent < 0 || (close_it && (size_t)sent == out)) {
    conn_close(c);
    return;
  }
  if ((size_t)sent < out) {
    c->pending_len = out - (size_t)sent;
    c->pending_off = 0;
    c->pending = malloc(c->pending_len);
    if (!c->pending) {
      conn_close(c);
      return;
    }
    memcpy(c->pending, w->out + sent, c->pending_len);
    c->close_after = close_it;
    set_events(c, EV_WRITE);
  }
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents) {
  (void)revents;
  struct worker *w = ev_userdata(loop);
  for (;;) {
    int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
      return; /* EMFILE etc.: retried on the next readiness */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->w = w;
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    c->close_after = 0;
    c->len = 0;
    ev_io_init(&c->io, conn_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
  }
}

static int listen_on(int port, int reuseport) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) return -1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, SOMAXCONN) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void *run_worker(void *arg) {
  struct worker *w = arg;
  ev_run(w->loop, 0);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (threads < 1) threads = 1;
  signal(SIGPIPE, SIG_IGN);
  struct worker *workers = calloc((size_t)threads, sizeof *workers);
  for (int i = 0; i < threads; i++) {
    struct worker *w = &workers[i];
    int fd = listen_on(port, threads > 1);
    w->loop = i == 0 ? ev_default_loop(0) : ev_loop_new(EVFLAG_AUTO);
    w->out = malloc(kOutBuf);
    if (fd < 0 || !w->loop || !w->out) {
      perror("libev_http: listen");
      return 1;
    }
    w->date_sec = -1;
    ev_set_userdata(w->loop, w);
    ev_io_init(&w->accept_io, accept_cb, fd, EV_READ);
    ev_io_start(w->loop, &w->accept_io);
  }
  for (int i = 1; i < threads; i++) {
    if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
      perror("libev_http: pthread_create");
      return 1;
    }
  }
  printf("listening %d\n", port);
  fflush(stdout);
  ev_run(workers[0].loop, 0);
  return 0;
}
