/*
 * dropproxy.h - a TCP proxy on 127.0.0.1 in front of a gateway that loses
 * answers on purpose: the first `drops` requests starting with a given
 * request line prefix ("POST /v1/orders ") reach the server, which
 * handles them, but the proxy closes the client's connection when the
 * answer starts coming back instead of passing it on. The client sees
 * "empty reply from server" - exactly a response lost in the network
 * after the server did the work - and must retry without doing the work
 * twice. Everything else is passed through byte for byte.
 * dropproxy_start_hook intervenes before a request instead.
 */
#ifndef TESTS_CLIENTS_DROPPROXY_H
#define TESTS_CLIENTS_DROPPROXY_H

#include <stddef.h>

typedef struct dropproxy dropproxy;

/* Listens on a free port, forwarding to 127.0.0.1:upstream_port. NULL on
 * failure. */
dropproxy *dropproxy_start(int upstream_port, const char *prefix, int drops);

/* The same, but instead of losing their answers it calls hook(request
 * bytes, length, arg) on the first `count` matching requests before
 * passing them on (and passes the answers): the test does something to
 * the server while the request is on its way (revokes its token). */
typedef void (*dropproxy_hook)(const char *req, size_t len, void *arg);
dropproxy *dropproxy_start_hook(int upstream_port, const char *prefix,
                                int count, dropproxy_hook hook, void *arg);

int dropproxy_port(const dropproxy *p);

/* How many answers it has dropped so far. */
int dropproxy_dropped(const dropproxy *p);

#endif
