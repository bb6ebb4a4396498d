/*
 * replica.h - the local copy of the tenant's menu, tables and orders, and
 * how server answers (pulled changes, push results) change it.
 */
#ifndef CLIENTS_SYNCD_REPLICA_H
#define CLIENTS_SYNCD_REPLICA_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

/* Sets order o (its JSON) as the base of its row (synced: it is the
 * server's copy) and rebases. Inside the caller's transaction. */
int replica_put_order(sqlite3 *db, const json_t *o, bool synced);

/* Recomputes an order's shown state: its base with every pending
 * mutation of it applied in order (Replicache's rebase). */
int replica_rebase(sqlite3 *db, const char *order_id);

/* One pulled change {seq, entity, op, id, version, data}. */
int replica_apply_change(sqlite3 *db, const json_t *change);

/* Forgets every synced row (a pull answered reset: true); local-only
 * orders and pending mutations stay. */
int replica_reset(sqlite3 *db);

/* Records the push result r of outbox mutation id (its name, order and
 * args text): the outbox row's status and result, a conflict, and the
 * result's effect on the order's base. */
int replica_record_result(sqlite3 *db, long long id, const char *name,
                          const char *order_id, const char *args,
                          const json_t *r);

#endif
