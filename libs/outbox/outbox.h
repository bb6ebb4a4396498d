/*
 * outbox.h - the transactional outbox: events written in the same database
 * transaction as the change they describe, published on the bus in order
 * by a relay, and served again through "<source>.v1.Events/Replay".
 *
 * WHY. nng pub/sub drops messages (docs/ARCHITECTURE.md, "Events"), and
 * a process can die between COMMIT and publish. So a
 * change writes its event into the service's outbox table inside its own
 * transaction (outbox_append): the event exists exactly when the change
 * committed. The relay numbers committed rows (seq 1, 2, 3, ... without
 * holes, the source's bus sequence), publishes them in seq order, and
 * marks them published. Subscribers that miss some (bus drops, they were
 * down) call Replay, which reads the same rows back.
 *
 * THE TABLE. Each service creates it in its own schema with its own
 * migration (libs/db runs migrations per schema); the relay only needs
 * these columns and indexes:
 *
 *   CREATE TABLE outbox (
 *     id           bigserial PRIMARY KEY,       -- insertion order
 *     event_id     uuid NOT NULL UNIQUE,        -- UUIDv7, stable across
 *                                               -- re-publication
 *     topic        text NOT NULL,               -- "orders.<tenant_id>"
 *     type         text NOT NULL,               -- "OrderCreated"
 *     tenant_id    uuid,                        -- NULL: not tenant-owned
 *     payload      bytea NOT NULL,              -- serialised protobuf
 *     created_at   timestamptz NOT NULL DEFAULT now(),
 *     seq          bigint UNIQUE,               -- NULL until sequenced
 *     published_at timestamptz                  -- NULL until on the bus
 *   );
 *   CREATE INDEX outbox_unsequenced_idx ON outbox (id) WHERE seq IS NULL;
 *   CREATE INDEX outbox_unpublished_idx ON outbox (seq)
 *     WHERE seq IS NOT NULL AND published_at IS NULL;
 *
 * With row-level security on the table (tenant rows visible only under
 * app.tenant_id), add the relay's own permissive policy, because the
 * relay and Replay read every tenant's rows:
 *
 *   CREATE POLICY outbox_relay ON outbox
 *     USING (current_setting('app.outbox_relay', true) = 'on');
 *
 * The relay's and Replay's transactions set app.outbox_relay = 'on'
 * (SET LOCAL); request transactions never do.
 *
 * ORDER AND CRASHES. One relay pass at a time per schema, across every
 * replica: a pass holds a PostgreSQL session advisory lock (key
 * hashtextextended('outbox:' || schema, 0)) on one pooled connection for
 * its whole duration, so replicas do not interleave their publications;
 * if the holder dies, its connection closes and the lock is free for the
 * next replica. A pass: (1) in a transaction, number the oldest
 * unsequenced rows after max(seq) in id order (seq = max(seq) +
 * row_number()), read the sequenced-but-unpublished rows in seq order
 * (these and any left by a relay that died after its step 1), commit -
 * seq is durable before anything is published, so a number never names
 * two events; (2) publish those rows in seq order, stopping at the first
 * failure; (3) set published_at on what went out; repeat while rows are
 * left; unlock. A crash between (2) and (3) publishes those rows again on
 * the next pass: the same event id and seq, which subscribers drop as
 * duplicates (libs/bus). Nothing is lost and nothing goes out of seq
 * order within the source.
 *
 * The relay wakes on outbox_kick (after a commit that wrote events) and
 * otherwise every poll_ms, so rows committed by another replica, or left
 * by one that crashed, go out without anyone kicking. After a kick it
 * lingers linger_ms (5 ms) so that concurrent commits share one pass
 * instead of paying a pass each. It prunes once a minute (outbox_prune
 * with keep_ms).
 *
 * Bounds. A payload is at most OUTBOX_PAYLOAD_MAX bytes (a row the bus
 * could never carry would stop the relay for good), and the relay and
 * Replay read at most about 2 MiB of rows at a time, so a Replay answer
 * always fits libs/rpc's 4 MiB envelope (it may then hold fewer events
 * than the limit; subscribers ask again from its last event).
 *
 * Metrics (libs/obs), labelled by source:
 *   outbox_published_total{source}     counter: events handed to publish
 *   outbox_relay_errors_total{source}  counter: passes that failed
 *                                      (database or publish error)
 *   outbox_pending{source}             gauge: committed rows not yet
 *                                      published, after the last pass
 *   outbox_last_seq{source}            gauge: highest seq given
 *   outbox_pruned_total{source}        counter: rows pruned
 *
 * Thread safety: outbox_append runs on the caller's connection and
 * transaction; everything else is safe from any thread.
 */
#ifndef OUTBOX_OUTBOX_H
#define OUTBOX_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/db/db.h"
#include "proto/rpc/v1/rpc.pb-c.h"

struct rpc_server;

#define OUTBOX_REPLAY_MAX 1000            /* events in one Replay answer */
#define OUTBOX_REPLAY_DEFAULT 256         /* when the request's limit is 0 */
#define OUTBOX_TOPIC_MAX 200              /* bytes of a topic */
#define OUTBOX_TYPE_MAX 64                /* bytes of an event type */
#define OUTBOX_PAYLOAD_MAX (256u * 1024u) /* bytes of a payload */

/* One event to append. Strings are borrowed; payload[0..len) too. */
typedef struct outbox_event {
  const char *topic;     /* required, 1..OUTBOX_TOPIC_MAX printable
                            ASCII bytes */
  const char *type;      /* required, 1..OUTBOX_TYPE_MAX printable ASCII
                            bytes */
  const char *tenant_id; /* UUID text, or NULL (or "") */
  const void *payload;   /* may be NULL when len is 0 */
  size_t len;            /* at most OUTBOX_PAYLOAD_MAX */
  /* The event id (UUIDv7 text) the row got; filled by outbox_append.
   * May be NULL when the caller does not need it. */
  char *event_id_out; /* at least 37 bytes */
} outbox_event;

/* Inserts ev into <schema>.outbox on c, inside the caller's open
 * transaction (ERR_INVAL when none is open or ev is malformed). The row
 * commits or rolls back with the caller's change; the caller kicks the
 * relay after its commit. schema is a trusted compile-time identifier
 * ("orders", [a-z_][a-z0-9_]*, at most 63 bytes), never user input. The
 * row is inserted under the caller's transaction settings, so with RLS
 * its tenant_id must be one the transaction may write. Errors: ERR_INVAL,
 * ERR_TOOBIG (payload), libs/db's mapping (a malformed tenant_id is
 * ERR_INVAL). */
int outbox_append(db_conn *c, const char *schema,
                  const outbox_event *ev) WARN_UNUSED;

/* outbox_append as a statement, for a caller that sends it with others
 * in one round trip (libs/db's db_exec_commit, inside its transaction):
 * the statement and the values it borrows (ev's strings and payload
 * too), kept by the caller until it ran. event_id is the row's. Errors:
 * outbox_append's checks (ERR_INVAL, ERR_TOOBIG). */
typedef struct outbox_stmt {
  db_stmt stmt;
  db_param ps[5];
  char sql[256];
  char event_id[37];
} outbox_stmt;
int outbox_append_stmt(const char *schema, const outbox_event *ev,
                       outbox_stmt *out) WARN_UNUSED;

/* Puts one event on the bus (normally bus_publish_event). ev is borrowed.
 * ERR_OK means handed to the transport; anything else stops the pass and
 * the event is retried on the next one. */
typedef int (*outbox_publish_fn)(void *arg, const Rpc__V1__Event *ev);

typedef struct outbox_options {
  const char *schema;        /* required: the service's schema ("orders") */
  const char *source;        /* required: the bus source ("orders"); also names
                                the Replay method "<source>.v1.Events/Replay" */
  outbox_publish_fn publish; /* NULL: rows are sequenced and marked
                                published without a bus (Replay only) */
  void *publish_arg;
  int64_t poll_ms; /* 0 -> 1000 */
  size_t batch;    /* rows per pass step; 0 -> 256, at most 10000 */
  int64_t keep_ms; /* published rows older than this are pruned by
                      the relay thread; 0 -> 7 days */
  /* After a kick, the relay waits this long before its pass so that the
   * commits of concurrent requests share one pass (a pass costs a few
   * round trips whether it carries one event or a hundred). Events reach
   * the bus at most this much later. 0 -> 5 ms; negative -> no wait. */
  int64_t linger_ms;
} outbox_options;

typedef struct outbox outbox;

/* Creates the relay (not running). opts is copied (its strings too); db
 * is borrowed and must outlive it. No connection is made yet. Errors:
 * ERR_INVAL (schema not [a-z_][a-z0-9_]* up to 63 bytes, source not
 * [a-z0-9_.-] up to 64 bytes, negative times), ERR_NOMEM, ERR_INTERNAL. */
int outbox_new(db_pool *db, const outbox_options *opts,
               outbox **out) WARN_UNUSED;

/* Starts the relay thread. ERR_INTERNAL when it cannot start. */
int outbox_start(outbox *ob) WARN_UNUSED;

/* Wakes the relay. Thread-safe, NULL-safe, cheap (no system call when a
 * wake-up is already pending). */
void outbox_kick(outbox *ob);

/* One relay pass on the calling thread (what the thread does). *published
 * (optional) = events that went out in this pass (handed to publish, or
 * with no publish function just marked). Returns ERR_OK; ERR_CONFLICT
 * when another relay holds the lock (nothing done); the publish
 * function's error when it failed (the rows before it are marked, that
 * one and the rest go out next pass); or a database error. For tests and
 * tools. */
int outbox_relay_once(outbox *ob, size_t *published) WARN_UNUSED;

/* The highest seq given so far (0: none). */
int outbox_last_seq(outbox *ob, uint64_t *out) WARN_UNUSED;

/* Deletes published rows created more than keep_ms ago, as a prefix in
 * seq order (a row is kept while a lower seq is kept, so the rows left
 * are always a contiguous seq range and Replay can tell what is gone),
 * and never the row with the highest seq (so max(seq) never goes back).
 * *deleted optional. ERR_INVAL for keep_ms < 0, libs/db's errors. */
int outbox_prune(outbox *ob, int64_t keep_ms, size_t *deleted) WARN_UNUSED;

/* Registers "<source>.v1.Events/Replay" on srv: rpc.v1.ReplayRequest ->
 * rpc.v1.ReplayResponse with the sequenced events after after_seq in seq
 * order (limit 0 -> OUTBOX_REPLAY_DEFAULT, at most OUTBOX_REPLAY_MAX, and
 * about 2 MiB) and last_seq; NOT_FOUND when events after after_seq were
 * already pruned; sequenced-but-unpublished rows are served too (they are
 * committed facts). One consistent snapshot per answer. ob must outlive
 * the server. Must be called before the server starts; errors as
 * rpc_server_register. */
int outbox_register_replay(outbox *ob, struct rpc_server *srv) WARN_UNUSED;

/* Stops and joins the thread (if started) and frees ob. NULL-safe. */
void outbox_free(outbox *ob);

#endif
