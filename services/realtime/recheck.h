/*
 * recheck.h - the tokens of live WebSocket connections, verified again
 * in the background so that a logout, a member removal or any other
 * revocation (and a tenant's suspension) closes the socket within a
 * second, without the WebSocket thread ever waiting on Redis for it.
 *
 * The WebSocket thread registers each connection's token (recheck_put, on
 * auth and refresh) and drops it on close. A thread of this module makes
 * a pass over every registered token every interval_ms, and at once when
 * woken: libs/authn's authn_verify answers from its cache, which a
 * revocation event on the bus (recheck_subscribe feeds them in) marks
 * revoked within milliseconds, and which re-reads the revocation keys in
 * Redis at most every recheck_ms (500 ms) per token when events are lost.
 * So a revocation is seen at the latest interval_ms + 500 ms after Redis
 * has it, and an event makes it immediate. A token refused as revoked or
 * of a suspended tenant is reported through report(arg, id, gen), from
 * this module's thread; expiry is not reported (the connection's own
 * timer closes it with 4001).
 *
 * Cost: one pass copies the registered tokens under the lock (a memcpy of
 * a few hundred bytes each), then verifies them outside it in batches of
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

/* Called from the recheck thread for a connection whose token (of
 * generation gen) is revoked or whose tenant is suspended. */
typedef void (*recheck_report_fn)(void *arg, uint64_t id, uint32_t gen);

typedef struct recheck_config {
  authn *verifier;     /* borrowed; outlives the recheck */
  int64_t interval_ms; /* between passes, > 0 */
  recheck_report_fn report;
  void *arg;
} recheck_config;

/* Starts the thread. Errors: ERR_INVAL, ERR_NOMEM, ERR_INTERNAL (thread).
 * *out is the caller's: recheck_free. */
int recheck_start(const recheck_config *c, recheck **out) WARN_UNUSED;

/* Stops the thread and frees r. NULL-safe. */
void recheck_free(recheck *r);

/* Registers (or replaces) connection id's token, of generation gen
 * (copied). Errors: ERR_NOMEM, ERR_INVAL. */
int recheck_put(recheck *r, uint64_t id, uint32_t gen,
                const char *token) WARN_UNUSED;

/* Forgets connection id (no-op when absent). */
void recheck_drop(recheck *r, uint64_t id);

/* Asks for a pass now (a revocation event arrived). */
void recheck_wake(recheck *r);

/* Subscribes to auth.revoked and tenants.changed at address (as
 * authn_subscribe): each event is applied to the verifier, then a pass
 * runs at once. *out is the caller's: bus_subscriber_free it before
 * recheck_free. Errors: those of bus_subscriber_new/start. */
int recheck_subscribe(recheck *r, const char *address,
                      bus_subscriber **out) WARN_UNUSED;

#endif
