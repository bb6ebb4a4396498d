/*
 * store_internal.h - what store.c and store_deliveries.c share: the
 * transaction runner and column readers. Not for other modules.
 */
#ifndef NOTIFICATIONS_STORE_INTERNAL_H
#define NOTIFICATIONS_STORE_INTERNAL_H

#include "services/notifications/store.h"

/* Runs fn in a transaction of tenant tid (NULL: none) as the store's role. */
int store_run(store *st, const char *tid, bool read_only,
              int (*fn)(db_conn *c, void *ud), void *ud) WARN_UNUSED;

/* Column name of row into dst[cap] ("" for NULL or no such column). */
void store_copy_col(const db_result *r, int row, const char *name, char *dst,
                    size_t cap);

/* A Unix-milliseconds column as RFC 3339 ("" for NULL). ERR_DB when the
 * column is missing. */
int store_time_col(const db_result *r, int row, const char *name,
                   char out[RFC3339_MS_LEN + 1]) WARN_UNUSED;

/* "{A,B}" for a text[] parameter. ERR_TOOBIG past cap. */
int store_events_literal(const char *const *events, size_t n, char *out,
                         size_t cap) WARN_UNUSED;

/* Inside the caller's transaction on c: one e-mail or SMS delivery per
 * msgs[i] of event event_id, each unless that (kind, user, event) has
 * one; their jobs appended to *jobs (realloc'd) and counted in *njobs. */
int store_add_messages(db_conn *c, const char *tid, const char *event_id,
                       const char *type, const store_message *msgs, size_t n,
                       store_job **jobs, size_t *njobs) WARN_UNUSED;

/* Inside the caller's transaction: app.tenant_id becomes tid (set_config,
 * local to the transaction), so row-level security binds the statements
 * that follow to tid - a transaction that serves several tenants. */
int store_set_tenant(db_conn *c, const char *tid) WARN_UNUSED;

/* Inside the caller's transaction: source's position becomes seq (never
 * lower than it was). */
int store_save_position(db_conn *c, const char *source,
                        uint64_t seq) WARN_UNUSED;

/* Inside the caller's transaction on c (store_attempts.c): delivery id's
 * newest max attempts, oldest first, into *out (malloc'd; NULL when
 * none), their number into *n. */
int store_list_attempts(db_conn *c, const char *tid, const char *id, size_t max,
                        store_attempt_entry **out, size_t *n) WARN_UNUSED;

/* Inside the caller's transaction: deletes all but delivery id's newest
 * keep attempts. */
int store_trim_attempts(db_conn *c, const char *tid, const char *id,
                        size_t keep) WARN_UNUSED;

/* fn in a read-only transaction under the sweep policy (every tenant). */
int store_run_sweep(store *st, int (*fn)(db_conn *c, void *ud),
                    void *ud) WARN_UNUSED;

/* The jobs a sweep query sql (parameters ps[0..nps), columns tid and id)
 * finds, into *jobs (malloc'd, the caller frees) and *njobs; on an error
 * none. */
int store_due_jobs(store *st, const char *sql, const db_param *ps, int nps,
                   store_job **jobs, size_t *njobs) WARN_UNUSED;

#endif
