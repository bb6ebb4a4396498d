/*
 * recheck.h - the tokens of live WebSocket connections, verified again
 * in the background so that a logout, a member removal or any other
 * revocation (and a tenant's suspension) closes the socket within a
 * second, without the WebSocket thread ever waiting on Redis for it.
 *
 * The WebSocket thread holds each connection's token through this module
 * (recheck_hold, on auth and refresh; recheck_release on close): one
 * shared, counted copy per distinct token, so connections that share a
 * token (a user's tabs, a screen's reconnects) keep one pointer each, not
 * a copy. A thread of this module makes a pass every interval_ms, and at
 * once when woken: libs/authn's authn_verify answers from its cache,
 * which a revocation event on the bus (recheck_subscribe feeds them in)
 * marks revoked within milliseconds. Without the event, Redis tells:
 * with a redis in the config the thread polls libs/authn's revocation
 * counter (revlog.h) and checks every held token against Redis again
 * only when it moved (plus a full pass every full_ms, and the tokens
 * held since the last pass each time: recheck.c explains why that is
 * enough); without one, every pass checks every token and the cache
 * re-reads Redis at most every recheck_ms (500 ms) per token. Either
 * way a revocation is seen within about interval_ms + one pass of Redis
 * having it, and an event makes it immediate. A token refused as revoked or
 * of a suspended tenant is reported through report(arg, t), from this
 * module's thread; the connections holding t are the ones to close.
 * Expiry is not reported (the WebSocket thread's sweep closes at it).
 *
 * Cost: one pass takes a reference to each distinct token under the lock,
 * then verifies them outside it in batches of
 * 256 (authn_verify_batch): a cache hit is a BLAKE2b hash, and the tokens
 * whose Redis state is older than recheck_ms (500 ms) share one MGET per
 * batch. realtime_recheck_pass_seconds (histogram) measures the passes.
 *
 * Threads: every function is thread-safe.
 */
#ifndef REALTIME_RECHECK_H
#define REALTIME_RECHECK_H

#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/bus/bus.h"

typedef struct recheck recheck;

/* A held token (opaque): compare handles, never their contents. */
typedef struct recheck_token recheck_token;

/* Called from the recheck thread for a token that is revoked or whose
 * tenant is suspended. The callee owns one reference to t (so t stays the
 * same token until then): recheck_release it when done. */
typedef void (*recheck_report_fn)(void *arg, recheck_token *t);

typedef struct recheck_config {
  authn *verifier;     /* borrowed; outlives the recheck */
  cache *redis;        /* the revocation counter (libs/authn/revlog.h),
                          borrowed; NULL: every pass is a full one */
  int64_t interval_ms; /* between passes, > 0 */
  int64_t full_ms;     /* with redis: a full pass at least this often
                          (the safety net; recheck.c); <= 0: 5000 */
  recheck_report_fn report;
  void *arg;
} recheck_config;

/* Starts the thread. Errors: ERR_INVAL, ERR_NOMEM, ERR_INTERNAL (thread).
 * *out is the caller's: recheck_free. */
int recheck_start(const recheck_config *c, recheck **out) WARN_UNUSED;

/* Stops the thread and waits for it: once this returns, report is never
 * called again (a report in progress has returned). The tokens stay
 * held: recheck_hold and recheck_release keep working, and no pass
 * checks them. Call it before whatever report uses goes away (the
 * WebSocket server: before its libwebsockets context is destroyed).
 * From one thread, not concurrently with recheck_free. NULL-safe;
 * idempotent. */
void recheck_stop(recheck *r);

/* Stops the thread (recheck_stop) and frees r with every token still
 * held. NULL-safe. */
void recheck_free(recheck *r);

/* A reference to token's shared copy (made at the first hold, checked
 * at every pass while held). Errors: ERR_NOMEM, ERR_INVAL. */
int recheck_hold(recheck *r, const char *token,
                 recheck_token **out) WARN_UNUSED;

/* Gives back one reference; the last one forgets the token. NULL-safe. */
void recheck_release(recheck *r, recheck_token *t);

/* Asks for a pass now (a revocation event arrived). */
void recheck_wake(recheck *r);

/* Subscribes to auth.revoked and tenants.changed at address (as
 * authn_subscribe): each event is applied to the verifier, then a pass
 * runs at once. *out is the caller's: bus_subscriber_free it before
 * recheck_free. Errors: those of bus_subscriber_new/start. */
int recheck_subscribe(recheck *r, const char *address,
                      bus_subscriber **out) WARN_UNUSED;

#endif
