/*
 * ws.h - the realtime WebSocket endpoint (ws://<addr>:<port>/v1/realtime),
 * served by libwebsockets on one thread of its own.
 *
 * The contract is services/realtime/README.md ("WebSocket"):
 *   - authentication by "Authorization: Bearer" on the upgrade, or a
 *     first frame {"op":"auth","token"} within auth_timeout_ms, verified
 *     offline by libs/authn -> {"op":"ready",...}; no or a bad token ->
 *     close 4001; the token's exp passing -> close 4001; refresh replaces
 *     the token (another user or tenant -> 4003); a revoked token or a
 *     suspended tenant on a live connection -> 4003 (recheck.h);
 *   - subscribe / unsubscribe with channel.h's authorisation; the answer
 *     carries the channel's offset and epoch (offsets.h); with `recover`
 *     the publications after the client's offset from the history, when
 *     it holds them all in the same epoch (recovered:true), else
 *     recovered:false and none; every publication either recovered or
 *     sent after, never both (ws_ops.c, op_subscribe);
 *   - history and presence (staff and above, same channel authorisation);
 *     presence is shared by the replicas through Redis (presence.h);
 *   - publications handed in by ws_server_publish from any thread, sent
 *     to every connection subscribed to the channel (an index from the
 *     channel to its subscriptions);
 *   - bounds: a message over 64 KiB -> close 1009; a send queue over
 *     send_queue_bytes -> close 4008; at most max_subscriptions channels
 *     per connection; at most max_conns_per_addr connections per remote
 *     address (the upgrade is refused past it); WebSocket ping after 30 s
 *     idle, hang-up after 60 s without an answer;
 *   - metrics (libs/obs) of connections, subscriptions, publications,
 *     deliveries, drops and publish -> write latency;
 *   - ws_server_free closes every connection with 1001 (drain).
 *
 * Threads: ws_server_publish is thread-safe; everything else belongs to
 * the thread that made the server. Connection state is touched only by
 * the libwebsockets thread, so it needs no lock; the shared structures
 * are the inbox of publications and the list of revoked connections (a
 * mutex, then lws_cancel_service wakes the thread, at most one wake-up
 * pending; ws.c, wake).
 */
#ifndef REALTIME_WS_H
#define REALTIME_WS_H

#include <stddef.h>
#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "services/realtime/offsets.h"
#include "services/realtime/presence.h"
#include "services/realtime/recheck.h"

#define WS_PATH "/v1/realtime"
#define WS_MAX_MESSAGE (64 * 1024) /* inbound bytes per message */
#define WS_HISTORY_LIMIT 1000      /* publications per history answer */
#define WS_HISTORY_LIMIT_STR "1000"

typedef struct ws_config {
  const char *addr;         /* bind address ("0.0.0.0") */
  int port;                 /* 1..65535 */
  authn *verifier;          /* borrowed; outlives the server */
  offsets *offsets;         /* borrowed; outlives the server */
  size_t max_subscriptions; /* per connection, 1..65535 */
  size_t send_queue_bytes;  /* per connection, >= 1 */
  int64_t auth_timeout_ms;  /* first-frame authentication, > 0 */
  int64_t ping_idle_ms;     /* silent this long: ping; twice: drop; > 0 */
  size_t inbox_max;         /* publications waiting for the thread */
  presence *presence;       /* borrowed; outlives the server */
  int64_t presence_ttl_ms;  /* a client's presence without a heartbeat */
  int64_t recheck_ms;       /* between passes over the live tokens, > 0 */
  cache *redis; /* the revocation counter the recheck polls (recheck.h);
                   NULL: every pass checks every token */
  int64_t recheck_full_ms;   /* the recheck's safety-net full pass */
  size_t max_conns_per_addr; /* connections per remote address; 0: any */
} ws_config;

typedef struct ws_server ws_server;

/* Listens (so a taken port fails start-up) and starts the service thread.
 * Errors: ERR_INVAL (config), ERR_UNAVAILABLE (cannot listen), ERR_NOMEM,
 * ERR_INTERNAL (thread). *out is the caller's: ws_server_free. */
int ws_server_start(const ws_config *c, ws_server **out) WARN_UNUSED;

/* Queues text[0..len) (a complete frame: the publication at offset in
 * epoch) for every connection subscribed to channel that has not seen
 * that offset (see ws.c, op_subscribe). Copied. Thread-safe. Errors: ERR_NOMEM,
 * ERR_TOOBIG (the inbox is full: the thread is stuck), ERR_CLOSED (draining).
 */
int ws_server_publish(ws_server *s, const char *channel, int64_t offset,
                      const char *epoch, const char *text,
                      size_t len) WARN_UNUSED;

/* The server's token recheck (owned by s), for recheck_subscribe. */
recheck *ws_server_recheck(ws_server *s);

/* Closes every connection with 1001, waits up to grace_ms for them to go,
 * stops the thread and the recheck's thread, then destroys the context
 * and frees s. Every thread that calls ws_server_publish (the feeds) must
 * have stopped before: it wakes the context (ws.c explains the order).
 * NULL-safe. */
void ws_server_free(ws_server *s, int64_t grace_ms);

#endif
