/*
 * outbox.h - publishing tenants.changed events from the outbox table, and
 * serving them again ("tenants.v1.Events/Replay").
 *
 * Changes write their event into tenants.outbox in the same transaction
 * (store.c), so an event exists exactly when its change committed. The
 * relay thread here gives new rows their bus sequence numbers (source
 * "tenants", 1, 2, 3, ... without holes, shared by all replicas through
 * the table) and hands them to the publish function (libs/bus). nng
 * pub/sub may drop them; subscribers that notice a gap, or start late,
 * call Replay, which reads the same rows back. Rows are kept for
 * keep_ms (outbox_prune, run by the janitor).
 *
 * The relay wakes when outbox_kick is called after a commit and otherwise
 * every poll_ms, so events of another replica's crash-interrupted relay
 * are published too.
 */
#ifndef TENANTS_OUTBOX_H
#define TENANTS_OUTBOX_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/db/db.h"
#include "libs/rpc/rpc.h"
#include "proto/rpc/v1/rpc.pb-c.h"
#include "services/tenants/store.h"

#define OUTBOX_SOURCE "tenants"
#define OUTBOX_REPLAY_METHOD "tenants.v1.Events/Replay"
#define OUTBOX_REPLAY_MAX 1000     /* events per Replay answer */
#define OUTBOX_REPLAY_DEFAULT 256

/* Puts one event on the bus. ev is borrowed. Returns ERR_OK or an error
 * (the event is not retried: subscribers heal through Replay). */
typedef int (*outbox_publish_fn)(void *arg, const Rpc__V1__Event *ev);

typedef struct outbox outbox;

/* Creates the relay (not running). st is borrowed; publish may be NULL
 * (events are then only sequenced, for Replay). poll_ms 0 -> 1000.
 * Errors: ERR_INVAL, ERR_NOMEM, ERR_INTERNAL. */
int outbox_new(store *st, outbox_publish_fn publish, void *arg,
               int64_t poll_ms, outbox **out) WARN_UNUSED;

/* Starts the relay thread. ERR_INTERNAL when it cannot start. */
int outbox_start(outbox *ob) WARN_UNUSED;

/* Wakes the relay (after a commit that wrote events). Thread-safe,
 * NULL-safe, cheap. */
void outbox_kick(outbox *ob);

/* Runs one relay pass on the calling thread: sequences and publishes what
 * is pending. *published (optional) gets the count. For tests and for
 * the thread itself. */
int outbox_relay_once(outbox *ob, size_t *published) WARN_UNUSED;

/* Registers "tenants.v1.Events/Replay" (rpc.v1.ReplayRequest ->
 * rpc.v1.ReplayResponse; NOT_FOUND when the events asked for were pruned;
 * limit 0 -> 256, at most 1000). */
int outbox_register(outbox *ob, rpc_server *srv) WARN_UNUSED;

/* Builds the outbox event of a change: a serialised tenants.v1.
 * TenantChanged {tenant_id, slug, status, change, hosts} of type
 * "TenantChanged". out->payload is malloc'd: release it with
 * outbox_event_clear. hosts may be NULL when nhosts is 0. ERR_NOMEM. */
int outbox_changed_event(const char *change, const char *tenant_id,
                         const char *slug, const char *status,
                         const char *const *hosts, size_t nhosts,
                         store_event *out) WARN_UNUSED;
void outbox_event_clear(store_event *ev); /* NULL-safe */

/* Stops and joins the thread (if started) and frees ob. NULL-safe. */
void outbox_free(outbox *ob);

#endif
