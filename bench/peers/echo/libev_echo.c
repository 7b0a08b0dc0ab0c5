/* libev_echo: single-threaded TCP echo server written directly on libev
 * callbacks, the event-loop limit that Spindle's echo server (fibers on
 * libev) is compared against in bench/run_echo_bench.sh.
 *
 * One ev_io per connection. Reads go into one buffer shared by all
 * connections (the server is single-threaded) and are written straight
 * back; only when the socket does not take all of it is the rest copied to
 * a per-connection buffer, and the watcher switches from EV_READ to
 * EV_WRITE until that is flushed (no reading meanwhile: back-pressure).
 * Listens on 127.0.0.1. Usage: libev_echo PORT; prints "listening PORT".
 */
#define _GNU_SOURCE /* accept4 */
#include <ev.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kBufSize = 64 * 1024 };

struct conn {
  ev_io io; /* first, so that a watcher pointer is a conn pointer */
  char *pending; /* unsent rest of the last echo, or NULL */
  size_t pending_len, pending_off;
};

static char shared_buf[kBufSize];

static void conn_close(struct ev_loop *loop, struct conn *c) {
  ev_io_stop(loop, &c->io);
  close(c->io.fd);
  free(c->pending);
  free(c);
}

static void set_events(struct ev_loop *loop, struct conn *c, int events) {
  ev_io_stop(loop, &c->io);
  ev_io_set(&c->io, c->io.fd, events);
  ev_io_start(loop, &c->io);
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

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents) {
  struct conn *c = (struct conn *)w;
  if (revents & EV_WRITE) {
    ssize_t n = write_some(w->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
    if (n < 0) {
      conn_close(loop, c);
      return;
    }
    c->pending_off += (size_t)n;
    if (c->pending_off == c->pending_len) {
      free(c->pending);
      c->pending = NULL;
      set_events(loop, c, EV_READ);
    }
    return;
  }
  ssize_t n = recv(w->fd, shared_buf, sizeof shared_buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  ssize_t sent = n <= 0 ? -1 : write_some(w->fd, shared_buf, (size_t)n);
  if (sent >= 0 && sent < n) {
    c->pending_len = (size_t)(n - sent);
    c->pending_off = 0;
    c->pending = malloc(c->pending_len);
    if (!c->pending) sent = -1;
  }
  if (sent < 0) {
    conn_close(loop, c); /* EOF, error, or out of memory */
    return;
  }
  if (sent < n) {
    memcpy(c->pending, shared_buf + sent, c->pending_len);
    set_events(loop, c, EV_WRITE);
  }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
      return; /* EMFILE etc.: retried on the next readiness */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    ev_io_init(&c->io, conn_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, SOMAXCONN) < 0) {
    perror("libev_echo: listen");
    return 1;
  }
  struct ev_loop *loop = ev_default_loop(0);
  ev_io accept_watcher;
  ev_io_init(&accept_watcher, accept_cb, lfd, EV_READ);
  ev_io_start(loop, &accept_watcher);
  printf("listening %d\n", port);
  fflush(stdout);
  ev_run(loop, 0);
  return 0;
}
