/*
 * listen.h - realtime listeners for the load bots: one WebSocket client
 * per tenant (libwebsockets), authenticated as the tenant's staff member
 * (Authorization header on the upgrade), subscribed to
 * orders.<tenant_id>, counting the publications delivered. Every order
 * the bots place, move or cancel is one event on that channel, so after
 * the run the deliveries should equal the changes the bots made; the
 * report shows both and what is missing.
 *
 * The clients run on one thread of their own (lws_service), so the load
 * loop never waits on them; the counters are atomics.
 */
#ifndef TOOLS_BOTS_LISTEN_H
#define TOOLS_BOTS_LISTEN_H

#include "tools/bots/world.h"

typedef struct listeners listeners;

/* Connects one listener per tenant of w to url ("ws://host:port") and
 * waits (up to timeout_ms) until each is subscribed. NULL, with the
 * reason on stderr, when any is not. */
listeners *listeners_start(const bots_world *w, const char *url,
                           long timeout_ms);

/* Order events (OrderCreated, OrderStatusChanged, ...) delivered so far,
 * over every listener. */
long listeners_deliveries(const listeners *l);

/* Other publications on the channel (product and stock events). */
long listeners_others(const listeners *l);

/* Connections that closed or failed after subscribing. */
long listeners_dropped(const listeners *l);

/* Waits until deliveries reach `expected` or stop growing for quiet_ms
 * (at most max_ms in all); returns the deliveries. */
long listeners_settle(listeners *l, long expected, long quiet_ms, long max_ms);

void listeners_stop(listeners *l);

#endif
