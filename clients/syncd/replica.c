/*
 * replica.c - the local replica (see replica.h).
 *
 * Each order row keeps two JSON copies: `base`, the last state the server
 * confirmed (or the local draft of an order it has not seen), and `data`,
 * what the kitchen sees: base with every still-pending mutation of that
 * order replayed on top. Server news replaces the base and replays the
 * pending mutations again, so a pull never hides a change waiting in the
 * outbox and a change is never applied twice. Pulled copies older than
 * the base (by version) are ignored: a conflict's server copy may have
 * arrived first.
 */
#include "clients/syncd/replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/syncd/store.h"
#include "libs/base/timeutil.h"

static const char *str(const json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s != NULL ? s : "";
}

static json_t *load_text(const unsigned char *t) {
  return t != NULL ? json_loads((const char *)t, 0, NULL) : NULL;
}

int replica_put_order(sqlite3 *db, const json_t *o, bool synced) {
  const char *id = str(o, "id");
  if (*id == '\0') return -1;
  char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  char ver[32];
  snprintf(ver, sizeof ver, "%lld",
           (long long)json_integer_value(json_object_get(o, "version")));
  int rc = store_exec(
      db,
      "INSERT INTO orders(id, status, version, data, base, synced) "
      "VALUES(?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT(id) DO UPDATE SET "
      "base = excluded.base, synced = max(synced, excluded.synced) WHERE "
      "excluded.version >= json_extract(orders.base, '$.version')",
      id, str(o, "status"), ver, text, synced ? "1" : "0");
  free(text);
  return rc == 0 ? replica_rebase(db, id) : rc;
}

/* Replays one pending mutation on order o. */
static void replay(json_t *o, const char *name, const json_t *args) {
  json_int_t v = json_integer_value(json_object_get(o, "version"));
  if (strcmp(name, "updateOrderStatus") == 0)
    json_object_set(o, "status", json_object_get(args, "status"));
  else if (strcmp(name, "cancelOrder") == 0)
    json_object_set_new(o, "status", json_string("cancelled"));
  else
    return;
  json_object_set_new(o, "version", json_integer(v + 1));
}

static int write_shown(sqlite3 *db, const char *id, const json_t *o) {
  char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  char ver[32];
  snprintf(ver, sizeof ver, "%lld",
           (long long)json_integer_value(json_object_get(o, "version")));
  int rc = store_exec(
      db,
      "UPDATE orders SET status = ?2, version = ?3, data = ?4 WHERE id = ?1",
      id, str(o, "status"), ver, text);
  free(text);
  return rc;
}

int replica_rebase(sqlite3 *db, const char *order_id) {
  sqlite3_stmt *st = NULL;
  json_t *o = NULL;
  if (sqlite3_prepare_v2(db, "SELECT base FROM orders WHERE id = ?1", -1, &st,
                         NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) o = load_text(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  if (o == NULL) return 0; /* not in the replica: nothing to show */
  if (sqlite3_prepare_v2(db,
                         "SELECT name, args FROM outbox WHERE order_id = ?1 "
                         "AND status IS NULL ORDER BY id",
                         -1, &st, NULL) != SQLITE_OK) {
    json_decref(o);
    return -1;
  }
  sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *args = load_text(sqlite3_column_text(st, 1));
    replay(o, (const char *)sqlite3_column_text(st, 0), args);
    json_decref(args);
  }
  sqlite3_finalize(st);
  int rc = write_shown(db, order_id, o);
  json_decref(o);
  return rc;
}

static int put_other(sqlite3 *db, const char *entity, const char *id,
                     const json_t *data) {
  char *text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
  char ver[32];
  snprintf(ver, sizeof ver, "%lld",
           (long long)json_integer_value(json_object_get(data, "version")));
  int rc;
  if (strcmp(entity, "product") == 0) {
    const json_t *a = json_object_get(data, "active");
    rc =
        store_exec(db,
                   "INSERT OR REPLACE INTO products(id, version, active, data) "
                   "VALUES(?1, ?2, ?3, ?4)",
                   id, ver, a == NULL || json_is_true(a) ? "1" : "0", text);
  } else {
    rc = store_exec(db,
                    "INSERT OR REPLACE INTO dining_tables(id, version, data) "
                    "VALUES(?1, ?2, ?3)",
                    id, ver, text);
  }
  free(text);
  return rc;
}

int replica_apply_change(sqlite3 *db, const json_t *c) {
  const char *entity = str(c, "entity"), *id = str(c, "id");
  const json_t *data = json_object_get(c, "data");
  bool del = strcmp(str(c, "op"), "delete") == 0 || !json_is_object(data);
  if (strcmp(entity, "order") == 0) {
    if (del) return store_exec(db, "DELETE FROM orders WHERE id = ?1", id);
    return replica_put_order(db, data, true);
  }
  if (strcmp(entity, "product") == 0) {
    if (del) return store_exec(db, "DELETE FROM products WHERE id = ?1", id);
    return put_other(db, entity, id, data);
  }
  if (strcmp(entity, "table") == 0) {
    if (del)
      return store_exec(db, "DELETE FROM dining_tables WHERE id = ?1", id);
    return put_other(db, entity, id, data);
  }
  return 0; /* an entity this version does not keep */
}

int replica_reset(sqlite3 *db) {
  int rc = store_exec(db, "DELETE FROM products");
  if (rc == 0) rc = store_exec(db, "DELETE FROM dining_tables");
  if (rc == 0)
    rc = store_exec(db, "DELETE FROM orders WHERE synced = 1 AND id NOT IN "
                        "(SELECT order_id FROM outbox WHERE status IS NULL)");
  return rc;
}

/* The status a result stands for: a duplicate carries its first result. */
static const char *effective(const json_t *r) {
  const char *s = str(r, "status");
  if (strcmp(s, "duplicate") != 0) return s;
  if (json_object_get(r, "conflict") != NULL) return "conflict";
  if (json_object_get(r, "error") != NULL) return "rejected";
  return "applied";
}

static int record_conflict(sqlite3 *db, long long id, const char *name,
                           const char *order_id, const char *args,
                           const json_t *conflict) {
  const json_t *server = json_object_get(conflict, "server");
  char *text = json_dumps(server != NULL ? server : json_null(),
                          JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  char mid[32], sv[32], now[RFC3339_MS_LEN + 1];
  snprintf(mid, sizeof mid, "%lld", id);
  snprintf(sv, sizeof sv, "%lld",
           (long long)json_integer_value(
               json_object_get(conflict, "server_version")));
  if (time_format_rfc3339(time_now_ms(), now) != 0) now[0] = '\0';
  int rc = store_exec(db,
                      "INSERT OR IGNORE INTO conflicts(mutation_id, order_id, "
                      "name, client, server_version, server, recorded_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      mid, order_id, name, args, sv, text, now);
  free(text);
  /* The server's copy wins locally until someone resolves it. */
  if (rc == 0 && json_is_object(server))
    rc = replica_put_order(db, server, true);
  return rc;
}

/* An applied mutation's effect on the order's base. */
static int advance_base(sqlite3 *db, const char *name, const char *order_id,
                        const char *args, const json_t *r) {
  int64_t base_v = store_int(
      db, "SELECT json_extract(base, '$.version') FROM orders WHERE id = ?1",
      order_id, -1);
  const json_t *v = json_object_get(r, "version");
  if (base_v < 0 || !json_is_integer(v) || json_integer_value(v) <= base_v)
    return replica_rebase(db, order_id);
  char ver[32];
  snprintf(ver, sizeof ver, "%lld", (long long)json_integer_value(v));
  const char *status = NULL;
  json_t *a = json_loads(args, 0, NULL);
  if (strcmp(name, "updateOrderStatus") == 0) status = str(a, "status");
  if (strcmp(name, "cancelOrder") == 0) status = "cancelled";
  int rc = status != NULL
               ? store_exec(db,
                            "UPDATE orders SET base = json_set(base, "
                            "'$.version', CAST(?2 AS INTEGER), '$.status', ?3) "
                            "WHERE id = ?1",
                            order_id, ver, status)
               : store_exec(db,
                            "UPDATE orders SET base = json_set(base, "
                            "'$.version', CAST(?2 AS INTEGER)) WHERE id = ?1",
                            order_id, ver);
  json_decref(a);
  return rc == 0 ? replica_rebase(db, order_id) : rc;
}

int replica_record_result(sqlite3 *db, long long id, const char *name,
                          const char *order_id, const char *args,
                          const json_t *r) {
  const char *s = effective(r);
  char *text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
  char mid[32];
  snprintf(mid, sizeof mid, "%lld", id);
  int rc = store_exec(db,
                      "UPDATE outbox SET status = ?2, result = ?3 WHERE "
                      "id = ?1 AND status IS NULL",
                      mid, s, text);
  free(text);
  if (rc != 0) return rc;
  if (strcmp(s, "conflict") == 0)
    return record_conflict(db, id, name, order_id, args,
                           json_object_get(r, "conflict"));
  if (strcmp(s, "applied") == 0)
    return advance_base(db, name, order_id, args, r);
  /* Refused: the server's copy is fetched again. */
  rc = store_exec(db, "INSERT OR IGNORE INTO refetch(order_id) VALUES(?1)",
                  order_id);
  return rc == 0 ? replica_rebase(db, order_id) : rc;
}
