/*
 * dropproxy.c - see dropproxy.h. A thread accepts; each connection gets
 * a detached thread that polls both sockets and copies bytes. The proxy
 * lives until the test process exits (tests start one or two).
 */
#include "tests/clients/dropproxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct dropproxy {
  int listen_fd, port, upstream_port;
  char prefix[64];
  dropproxy_hook hook; /* NULL: drop the answers of matching requests */
  void *hook_arg;
  atomic_int left, dropped;
};

typedef struct conn {
  dropproxy *p;
  int c, u;
} conn;

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
  if (fd >= 0) close(fd);
  return -1;
}

static bool write_all(int fd, const char *b, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, b, (size_t)n);
    if (w <= 0) return false;
    b += w, n -= w;
  }
  return true;
}

/* A request chunk from the client: marks the connection when its answer
 * is to be lost. */
static bool to_drop(dropproxy *p, const char *b, ssize_t n) {
  size_t k = strlen(p->prefix);
  if ((size_t)n < k || memcmp(b, p->prefix, k) != 0) return false;
  return atomic_fetch_sub(&p->left, 1) > 0;
}

static void *serve(void *arg) {
  conn *x = arg;
  bool dropping = false;
  char buf[16384];
  struct pollfd fds[2] = {{.fd = x->c, .events = POLLIN},
                          {.fd = x->u, .events = POLLIN}};
  while (poll(fds, 2, 30000) > 0) {
    if (fds[0].revents) {
      ssize_t n = read(x->c, buf, sizeof buf);
      if (n <= 0) break;
      if (to_drop(x->p, buf, n)) {
        if (x->p->hook == NULL)
          dropping = true;
        else
          x->p->hook(buf, (size_t)n, x->p->hook_arg);
      }
      if (!write_all(x->u, buf, n)) break;
    }
    if (fds[1].revents) {
      ssize_t n = read(x->u, buf, sizeof buf);
      if (n <= 0) break;
      if (dropping) { /* the server answered: lose it */
        atomic_fetch_add(&x->p->dropped, 1);
        break;
      }
      if (!write_all(x->c, buf, n)) break;
    }
  }
  close(x->c);
  close(x->u);
  free(x);
  return NULL;
}

static void *accept_loop(void *arg) {
  dropproxy *p = arg;
  for (;;) {
    int c = accept(p->listen_fd, NULL, NULL);
    if (c < 0) continue;
    conn *x = malloc(sizeof *x);
    int u = dial(p->upstream_port);
    if (x == NULL || u < 0) {
      close(c);
      if (u >= 0) close(u);
      free(x);
      continue;
    }
    *x = (conn){.p = p, .c = c, .u = u};
    pthread_t t;
    if (pthread_create(&t, NULL, serve, x) == 0)
      pthread_detach(t);
    else {
      close(c), close(u), free(x);
    }
  }
  return NULL;
}

dropproxy *dropproxy_start_hook(int upstream_port, const char *prefix,
                                int count, dropproxy_hook hook, void *arg) {
  dropproxy *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->upstream_port = upstream_port;
  p->hook = hook;
  p->hook_arg = arg;
  snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
  atomic_init(&p->left, count);
  p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  pthread_t t;
  if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) ||
      listen(p->listen_fd, 64) ||
      getsockname(p->listen_fd, (struct sockaddr *)&a, &len) ||
      pthread_create(&t, NULL, accept_loop, p)) {
    if (p->listen_fd >= 0) close(p->listen_fd);
    free(p);
    return NULL;
  }
  pthread_detach(t);
  p->port = ntohs(a.sin_port);
  return p;
}

dropproxy *dropproxy_start(int upstream_port, const char *prefix, int drops) {
  return dropproxy_start_hook(upstream_port, prefix, drops, NULL, NULL);
}

int dropproxy_port(const dropproxy *p) { return p->port; }

int dropproxy_dropped(const dropproxy *p) { return atomic_load(&p->dropped); }
