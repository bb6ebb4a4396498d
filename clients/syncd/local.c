/*
 * local.c - orders and status changes made locally (see local.h).
 *
 * A mutation takes the next mutation id (ids grow by 1 from the server's
 * last_mutation_id + 1), a tick of the hybrid logical clock, and the hash
 * of its args' canonical JSON; it is queued in the outbox and applied to
 * the replica optimistically, all in one BEGIN IMMEDIATE transaction, so
 * two command-line processes never take the same id and a crash keeps
 * both or neither. Inputs are checked against the replica (a known,
 * active product; a known table and order) and bounded here, before
 * they wait in the outbox for days.
 */
#include "clients/syncd/local.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/syncd/clock.h"
#include "clients/syncd/replica.h"
#include "clients/syncd/store.h"
#include "libs/base/timeutil.h"

#define QTY_MAX 1000

static const char *const kStatuses[] = {"confirmed", "preparing", "ready",
                                        "delivered", "cancelled", NULL};

/* The replica's JSON of one row (sql with one parameter), NULL if none. */
static json_t *row_json(sqlite3 *db, const char *sql, const char *id) {
  sqlite3_stmt *st = NULL;
  json_t *v = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
  sqlite3_finalize(st);
  return v;
}

/* Queues mutation name(args) for order_id; inside the caller's
 * transaction. */
static int enqueue(sqlite3 *db, const char *name, const char *order_id,
                   json_t *args) {
  int64_t mid = store_get_int(db, "next_mutation_id", 1);
  hlc c = {store_get_int(db, "hlc_wall", 0),
           store_get_int(db, "hlc_counter", 0)};
  hlc_tick(&c, time_now_ms());
  char *text = canon_json(args);
  if (text == NULL) return -1;
  char hash[65], hl[32], ct[RFC3339_MS_LEN + 1], id[32];
  canon_hash(text, hash);
  hlc_format(&c, hl);
  if (time_format_rfc3339(c.wall, ct) != 0) ct[0] = '\0';
  snprintf(id, sizeof id, "%lld", (long long)mid);
  int rc = store_exec(db,
                      "INSERT INTO outbox(id, name, order_id, args, hash, "
                      "client_time, hlc) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      id, name, order_id, text, hash, ct, hl);
  free(text);
  if (rc == 0) rc = store_set_int(db, "next_mutation_id", mid + 1);
  if (rc == 0) rc = store_set_int(db, "hlc_wall", c.wall);
  if (rc == 0) rc = store_set_int(db, "hlc_counter", c.counter);
  return rc;
}

/* The order as the replica shows it until the server's copy arrives. */
static json_t *draft_order(const char *oid, const json_t *product, int64_t qty,
                           const char *table_id) {
  json_int_t price =
      json_integer_value(json_object_get(product, "price_cents"));
  json_t *item =
      json_pack("{s:s, s:O, s:I, s:I, s:I}", "product_id",
                json_string_value(json_object_get(product, "id")), "name",
                json_object_get(product, "name"), "unit_price_cents", price,
                "quantity", (json_int_t)qty, "line_total_cents", price * qty);
  json_t *o =
      json_pack("{s:s, s:s, s:[o], s:I, s:i}", "id", oid, "status", "pending",
                "items", item, "total_cents", price * qty, "version", 1);
  if (o != NULL && table_id != NULL)
    json_object_set_new(o, "table_id", json_string(table_id));
  return o;
}

static int check_add(sqlite3 *db, const char *product_id, int64_t qty,
                     const char *table_id, json_t **product, char err[256]) {
  if (!uuid_is_valid(product_id))
    return snprintf(err, 256, "--product: not a UUID"), -1;
  if (qty < 1 || qty > QTY_MAX)
    return snprintf(err, 256, "--qty: must be between 1 and %d", QTY_MAX), -1;
  if (table_id != NULL &&
      store_int(db, "SELECT count(*) FROM dining_tables WHERE id = ?1",
                table_id, 0) != 1)
    return snprintf(err, 256, "--table: no such table in the replica"), -1;
  *product = row_json(db, "SELECT data FROM products WHERE id = ?1 AND active",
                      product_id);
  if (*product == NULL)
    return snprintf(err, 256, "--product: not on the menu (run sync first)"),
           -1;
  return 0;
}

int local_order_add(sqlite3 *db, const char *product_id, int64_t qty,
                    const char *table_id, char order_id[UUID_STR_LEN + 1],
                    char err[256]) {
  json_t *product = NULL;
  if (check_add(db, product_id, qty, table_id, &product, err) != 0) return -1;
  uuid_v7_str(order_id);
  json_t *args =
      json_pack("{s:s, s:[{s:s, s:I}]}", "order_id", order_id, "items",
                "product_id", product_id, "quantity", (json_int_t)qty);
  if (table_id != NULL)
    json_object_set_new(args, "table_id", json_string(table_id));
  json_t *draft = draft_order(order_id, product, qty, table_id);
  int rc = store_begin(db);
  if (rc == 0) rc = enqueue(db, "createOrder", order_id, args);
  if (rc == 0) rc = replica_put_order(db, draft, false);
  if (rc == 0) rc = store_commit(db);
  if (rc != 0) {
    store_rollback(db);
    snprintf(err, 256, "could not queue the order");
  }
  json_decref(args);
  json_decref(draft);
  json_decref(product);
  return rc;
}

static bool known_status(const char *s) {
  for (int i = 0; kStatuses[i] != NULL; i++)
    if (strcmp(s, kStatuses[i]) == 0) return true;
  return false;
}

int local_order_status(sqlite3 *db, const char *order_id, const char *status,
                       char err[256]) {
  if (!uuid_is_valid(order_id))
    return snprintf(err, 256, "ORDER_ID: not a UUID"), -1;
  if (!known_status(status))
    return snprintf(err, 256,
                    "STATUS: one of confirmed, preparing, ready, delivered, "
                    "cancelled"),
           -1;
  if (store_begin(db) != 0) return snprintf(err, 256, "database busy"), -1;
  int64_t base =
      store_int(db, "SELECT version FROM orders WHERE id = ?1", order_id, -1);
  if (base < 0) {
    store_rollback(db);
    return snprintf(err, 256, "ORDER_ID: no such order in the replica"), -1;
  }
  bool cancel = strcmp(status, "cancelled") == 0;
  json_t *args =
      cancel ? json_pack("{s:s, s:I}", "order_id", order_id, "base_version",
                         (json_int_t)base)
             : json_pack("{s:s, s:s, s:I}", "order_id", order_id, "status",
                         status, "base_version", (json_int_t)base);
  int rc =
      enqueue(db, cancel ? "cancelOrder" : "updateOrderStatus", order_id, args);
  if (rc == 0) rc = replica_rebase(db, order_id);
  if (rc == 0) rc = store_commit(db);
  if (rc != 0) {
    store_rollback(db);
    snprintf(err, 256, "could not queue the change");
  }
  json_decref(args);
  return rc;
}
