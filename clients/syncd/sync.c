/*
 * sync.c - registration, the device session and one sync round (see
 * sync.h).
 *
 * Exactly once is the server's promise (docs/adr/0017): a mutation keeps
 * its id forever and stays in the outbox, status NULL, until its result
 * is recorded here; resending it after a lost answer or a kill -9 gets
 * `duplicate` with the first result, which is recorded like the first
 * answer would have been. The results of one push, and each pulled page
 * with its cursor, are each one transaction. Pulls come after the outbox
 * is empty, so what is pulled already includes this device's changes.
 */
#include "clients/syncd/sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/syncd/clock.h"
#include "clients/syncd/replica.h"
#include "clients/syncd/store.h"
#include "clients/syncd/upload.h"
#include "libs/base/timeutil.h"

#define APP_VERSION "syncd/0.1"
#define PULL_LIMIT 500
#define REFETCH_MAX 50

http_target sync_target(const sync_ctx *x, bool auth) {
  return (http_target){.base_url = x->base_url,
                       .tenant = x->tenant,
                       .token = auth ? x->token : NULL,
                       .timeout_ms = x->cfg.timeout_ms};
}

/* Records why a round failed (never a secret) and goes offline. */
int sync_fail(sync_ctx *x, const char *what, long status) {
  char msg[160];
  if (status == 0)
    snprintf(msg, sizeof msg, "%s: server unreachable", what);
  else
    snprintf(msg, sizeof msg, "%s: HTTP %ld", what, status);
  if (status == 401) x->token[0] = '\0';
  (void)store_set(x->db, "last_error", msg);
  (void)store_set(x->db, "online", "0");
  return -1;
}

static long open_session(sync_ctx *x) {
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/devices/%s/session", x->device_id);
  json_t *body = json_pack("{s:s}", "device_secret", x->secret), *ans = NULL;
  http_target t = sync_target(x, false);
  long s = http_json(&t, "POST", path, body, &ans);
  json_decref(body);
  const char *tok = json_string_value(json_object_get(ans, "access_token"));
  if (s == 200 && tok != NULL && strlen(tok) < sizeof x->token) {
    snprintf(x->token, sizeof x->token, "%s", tok);
    json_int_t ttl = json_integer_value(json_object_get(ans, "expires_in"));
    /* Renewed a minute early (or halfway through a short token). */
    int64_t margin = ttl > 120 ? 60000 : ttl * 500;
    x->token_until_ms = time_now_ms() + ttl * 1000 - margin;
  } else if (s == 200) {
    s = 502;
  }
  json_decref(ans);
  return s;
}

static int ensure_token(sync_ctx *x) {
  if (x->token[0] != '\0' && time_now_ms() < x->token_until_ms) return 0;
  long s = open_session(x);
  return s == 200 ? 0 : sync_fail(x, "session", s);
}

/* The pending mutations (up to the batch) as the push body; *n gets their
 * count. */
static json_t *pending_batch(sync_ctx *x, int *n) {
  sqlite3_stmt *st = NULL;
  *n = 0;
  if (sqlite3_prepare_v2(x->db,
                         "SELECT id, name, args, client_time, hash FROM outbox "
                         "WHERE status IS NULL ORDER BY id LIMIT ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_int(st, 1, x->cfg.push_batch);
  json_t *muts = json_array();
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *args =
        json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
    json_array_append_new(
        muts, json_pack("{s:I, s:s, s:o, s:s, s:s}", "id",
                        (json_int_t)sqlite3_column_int64(st, 0), "name",
                        (const char *)sqlite3_column_text(st, 1), "args",
                        args != NULL ? args : json_object(), "client_time",
                        (const char *)sqlite3_column_text(st, 3), "hash",
                        (const char *)sqlite3_column_text(st, 4)));
    (*n)++;
  }
  sqlite3_finalize(st);
  return json_pack("{s:o}", "mutations", muts);
}

/* Records result r (for the outbox row with its id), inside the push's
 * transaction. */
static int record(sync_ctx *x, const json_t *r) {
  sqlite3_stmt *st = NULL;
  long long id = (long long)json_integer_value(json_object_get(r, "id"));
  if (sqlite3_prepare_v2(x->db,
                         "SELECT name, order_id, args FROM outbox WHERE id = "
                         "?1 AND status IS NULL",
                         -1, &st, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_int64(st, 1, id);
  int rc = 0;
  if (sqlite3_step(st) == SQLITE_ROW)
    rc = replica_record_result(x->db, id,
                               (const char *)sqlite3_column_text(st, 0),
                               (const char *)sqlite3_column_text(st, 1),
                               (const char *)sqlite3_column_text(st, 2), r);
  sqlite3_finalize(st);
  return rc;
}

/* One push: 1 when something was recorded, 0 when the outbox is empty,
 * -1 on failure. */
static int push_once(sync_ctx *x) {
  int n = 0;
  json_t *body = pending_batch(x, &n), *ans = NULL;
  if (body == NULL || n == 0) {
    json_decref(body);
    return body == NULL ? -1 : 0;
  }
  http_target t = sync_target(x, true);
  long s = http_json(&t, "POST", "/v1/sync/push", body, &ans);
  json_decref(body);
  json_t *results = json_object_get(ans, "results");
  if (s != 200 || !json_is_array(results) || json_array_size(results) == 0) {
    json_decref(ans);
    return sync_fail(x, "push", s == 200 ? 502 : s);
  }
  int rc = store_begin(x->db);
  size_t i;
  json_t *r;
  json_array_foreach(results, i, r) if (rc == 0) rc = record(x, r);
  if (rc == 0) rc = store_commit(x->db);
  if (rc != 0) store_rollback(x->db);
  json_decref(ans);
  return rc == 0 ? 1 : -1;
}

/* One pulled page, its changes and cursor in one transaction. */
static int apply_page(sync_ctx *x, const json_t *ans) {
  const json_t *changes = json_object_get(ans, "changes");
  int rc = store_begin(x->db);
  if (rc == 0 && json_is_true(json_object_get(ans, "reset"))) {
    rc = replica_reset(x->db);
    if (rc == 0) rc = store_set_int(x->db, "cursor", 0);
    if (rc == 0) rc = store_commit(x->db);
    if (rc != 0) store_rollback(x->db);
    return rc;
  }
  size_t i;
  json_t *c;
  json_array_foreach(changes, i, c) if (rc == 0) rc =
      replica_apply_change(x->db, c);
  if (rc == 0)
    rc = store_set_int(x->db, "cursor",
                       json_integer_value(json_object_get(ans, "cursor")));
  if (rc == 0) rc = store_commit(x->db);
  if (rc != 0) store_rollback(x->db);
  return rc;
}

static int pull(sync_ctx *x) {
  for (int pages = 0; pages < 10000; pages++) {
    char path[96];
    snprintf(path, sizeof path, "/v1/sync/pull?cursor=%" PRId64 "&limit=%d",
             store_get_int(x->db, "cursor", 0), PULL_LIMIT);
    json_t *ans = NULL;
    http_target t = sync_target(x, true);
    long s = http_json(&t, "GET", path, NULL, &ans);
    if (s != 200 || !json_is_array(json_object_get(ans, "changes"))) {
      json_decref(ans);
      return sync_fail(x, "pull", s == 200 ? 502 : s);
    }
    bool more = json_is_true(json_object_get(ans, "has_more")) ||
                json_is_true(json_object_get(ans, "reset"));
    int rc = apply_page(x, ans);
    json_decref(ans);
    if (rc != 0) return -1;
    if (!more) return 0;
  }
  return 0;
}

/* Orders whose mutation was refused: the server's copy again (404: it
 * never existed there, so the local draft goes). */
static int refetch(sync_ctx *x) {
  char ids[REFETCH_MAX][40];
  int n = 0;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(x->db, "SELECT order_id FROM refetch LIMIT 50", -1,
                         &st, NULL) != SQLITE_OK)
    return -1;
  while (n < REFETCH_MAX && sqlite3_step(st) == SQLITE_ROW)
    snprintf(ids[n++], sizeof ids[0], "%s",
             (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  for (int i = 0; i < n; i++) {
    char path[128];
    snprintf(path, sizeof path, "/v1/orders/%.40s", ids[i]);
    json_t *o = NULL;
    http_target t = sync_target(x, true);
    long s = http_json(&t, "GET", path, NULL, &o);
    if (s != 200 && s != 404) {
      json_decref(o);
      return sync_fail(x, "refetch", s);
    }
    int rc = store_begin(x->db);
    if (rc == 0)
      rc = s == 200 ? replica_put_order(x->db, o, true)
                    : store_exec(x->db,
                                 "DELETE FROM orders WHERE id = ?1 AND id NOT "
                                 "IN (SELECT order_id FROM outbox WHERE "
                                 "status IS NULL)",
                                 ids[i]);
    if (rc == 0)
      rc = store_exec(x->db, "DELETE FROM refetch WHERE order_id = ?1", ids[i]);
    if (rc == 0) rc = store_commit(x->db);
    if (rc != 0) store_rollback(x->db);
    json_decref(o);
    if (rc != 0) return -1;
  }
  return 0;
}

static int heartbeat(sync_ctx *x) {
  int64_t now = time_now_ms();
  if (now < x->next_beat_ms) return 0;
  json_int_t pending = store_int(
      x->db, "SELECT count(*) FROM outbox WHERE status IS NULL", NULL, 0);
  json_t *body = json_pack("{s:s, s:I, s:I}", "app_version", APP_VERSION,
                           "pending", pending, "cursor",
                           (json_int_t)store_get_int(x->db, "cursor", 0));
  json_t *ans = NULL;
  http_target t = sync_target(x, true);
  long s = http_json(&t, "POST", "/v1/sync/heartbeat", body, &ans);
  json_decref(body);
  const char *st = json_string_value(json_object_get(ans, "server_time"));
  int64_t server_ms;
  if (s == 200 && st != NULL &&
      time_parse_rfc3339(st, strlen(st), &server_ms) == 0) {
    /* The server's clock moves ours forward (never back). */
    hlc c = {store_get_int(x->db, "hlc_wall", 0),
             store_get_int(x->db, "hlc_counter", 0)};
    hlc_recv(&c, server_ms, time_now_ms());
    if (store_begin(x->db) == 0) {
      int rc = store_set_int(x->db, "hlc_wall", c.wall);
      if (rc == 0) rc = store_set_int(x->db, "hlc_counter", c.counter);
      if (rc == 0) rc = store_commit(x->db);
      if (rc != 0) store_rollback(x->db);
    }
  }
  json_decref(ans);
  if (s != 200) return sync_fail(x, "heartbeat", s);
  x->next_beat_ms = now + x->cfg.heartbeat_ms;
  return 0;
}

int sync_round(sync_ctx *x) {
  upload_scan(x);
  if (ensure_token(x) != 0) return -1;
  int r;
  while ((r = push_once(x)) == 1) {
  }
  if (r < 0 || pull(x) != 0 || refetch(x) != 0 || heartbeat(x) != 0 ||
      upload_round(x) != 0)
    return -1;
  char now[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(time_now_ms(), now) != 0) now[0] = '\0';
  int rc = store_begin(x->db);
  if (rc == 0) rc = store_set(x->db, "online", "1");
  if (rc == 0) rc = store_set(x->db, "last_sync", now);
  if (rc == 0) rc = store_set(x->db, "last_error", "");
  if (rc == 0) rc = store_commit(x->db);
  if (rc != 0) store_rollback(x->db);
  return rc;
}

bool sync_load(sync_ctx *x, sqlite3 *db, const sync_cfg *cfg) {
  memset(x, 0, sizeof *x);
  x->db = db;
  x->cfg = *cfg;
  return store_get(db, "base_url", x->base_url, sizeof x->base_url) &&
         store_get(db, "tenant", x->tenant, sizeof x->tenant) &&
         store_get(db, "device_id", x->device_id, sizeof x->device_id) &&
         store_get(db, "device_secret", x->secret, sizeof x->secret);
}
