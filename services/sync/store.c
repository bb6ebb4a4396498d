/*
 * store.c - the sync service's SQL (see store.h for the transaction
 * design).
 *
 * Each public function is a struct of arguments plus a static function
 * run inside db_with_tx, so every statement is parameterised (constant
 * SQL text, values as $n) and a deadlock or serialisation failure retries
 * the whole unit; the functions reset their outputs at the start of every
 * attempt. Columns are read by name (db_col), never by position. Times
 * leave the database as Unix milliseconds and are formatted here; the
 * secret's hash leaves as hex and is decoded here (the caller compares it
 * in constant time).
 */
#include "services/sync/store.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

/* The columns of a device, as read_device reads them (by name). */
#define DEVICE_COLS                                                            \
  "id::text AS id, name, platform, app_version, online, pending, "             \
  "coalesce(pull_cursor, 0) AS pull_cursor, "                                  \
  "encode(secret_hash, 'hex') AS secret_hex, "                                 \
  "floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms, "       \
  "floor(extract(epoch FROM last_seen_at) * 1000)::bigint AS seen_ms"

int store_new(db_pool *db, const char *role, store **out) {
  return db_store_new(db, role, out);
}

void store_free(store *st) { db_store_free(st); }

/* Runs fn in a transaction of tenant tid as the store's role (with
 * libs/db's retries of deadlocks and serialisation failures). */
static int run(store *st, const char *tid, bool read_only,
               int (*fn)(db_conn *c, void *ud), void *ud) {
  return db_store_run(st, tid, NULL, read_only, fn, ud);
}

/* Row `row` of r into *out (and the secret's hash into hash when not
 * NULL). */
static int read_device(const db_result *r, int row, store_device *out,
                       uint8_t *hash) {
  int id = db_col(r, "id"), name = db_col(r, "name"),
      platform = db_col(r, "platform"), ver = db_col(r, "app_version"),
      online = db_col(r, "online"), pending = db_col(r, "pending"),
      secret = db_col(r, "secret_hex"), created = db_col(r, "created_ms"),
      seen = db_col(r, "seen_ms"), cursor = db_col(r, "pull_cursor");
  if (id < 0 || name < 0 || platform < 0 || ver < 0 || online < 0 ||
      pending < 0 || secret < 0 || created < 0 || seen < 0 || cursor < 0)
    return ERR_DB;
  memset(out, 0, sizeof *out);
  db_copy_cell(r, row, id, out->id, sizeof out->id);
  db_copy_cell(r, row, name, out->name, sizeof out->name);
  db_copy_cell(r, row, platform, out->platform, sizeof out->platform);
  db_copy_cell(r, row, ver, out->app_version, sizeof out->app_version);
  const char *b = db_get(r, row, online);
  out->online = b != NULL && b[0] == 't';
  int64_t v = 0;
  if (db_get_int64(r, row, pending, &v) == ERR_OK) out->pending = (int32_t)v;
  if (db_get_int64(r, row, cursor, &v) == ERR_OK) out->cursor = v;
  int rc = db_get_int64(r, row, created, &v);
  if (rc == ERR_OK) rc = time_format_rfc3339(v, out->created_at);
  if (rc == ERR_OK && db_get(r, row, seen) != NULL) {
    rc = db_get_int64(r, row, seen, &v);
    if (rc == ERR_OK) rc = time_format_rfc3339(v, out->last_seen_at);
  }
  if (rc == ERR_OK && hash != NULL) {
    const char *hex = db_get(r, row, secret);
    size_t n = 0;
    if (hex == NULL ||
        sodium_hex2bin(hash, STORE_SECRET_HASH_LEN, hex, strlen(hex), NULL, &n,
                       NULL) != 0 ||
        n != STORE_SECRET_HASH_LEN)
      rc = ERR_DB;
  }
  return rc;
}

/* ----------------------------------------------------------- create --- */

typedef struct create_args {
  const char *tid, *name, *platform;
  const uint8_t *hash;
  idem_once *key;
  store_device *out;
} create_args;

static int create_device_fn(db_conn *c, void *ud) {
  create_args *a = ud;
  memset(a->out, 0, sizeof *a->out);
  int rc = idem_once_begin(c, a->key);
  if (rc != ERR_OK || !idem_once_fresh(a->key)) return rc;
  char id[UUID_STR_LEN + 1];
  int64_t id_ms = uuid_v7_str(id);
  db_param ps[] = {db_text(a->tid),
                   db_text(id),
                   db_text(a->name),
                   db_text(a->platform),
                   db_bytes(a->hash, STORE_SECRET_HASH_LEN),
                   db_int64(id_ms)};
  db_result *r = NULL;
  rc = db_exec(c,
               "INSERT INTO sync.devices "
               "(tenant_id, id, name, platform, secret_hash, created_at) "
               "VALUES ($1::uuid, $2::uuid, $3, $4, $5, "
               "timestamptz 'epoch' + $6::bigint * interval '1 millisecond') "
               "RETURNING " DEVICE_COLS,
               ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? read_device(r, 0, a->out, NULL) : ERR_DB;
  db_result_free(r);
  return rc == ERR_OK ? idem_once_save(c, a->key, a->out) : rc;
}

int store_device_create(store *st, const char *tid, const char *name,
                        const char *platform,
                        const uint8_t hash[STORE_SECRET_HASH_LEN],
                        idem_once *key, store_device *out) {
  create_args a = {.tid = tid,
                   .name = name,
                   .platform = platform,
                   .hash = hash,
                   .key = key,
                   .out = out};
  return run(st, tid, false, create_device_fn, &a);
}

/* -------------------------------------------------------------- get --- */

typedef struct get_args {
  const char *tid, *id;
  store_device *out;
  uint8_t *hash;
} get_args;

static int get_device_fn(db_conn *c, void *ud) {
  get_args *a = ud;
  memset(a->out, 0, sizeof *a->out);
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " DEVICE_COLS " FROM sync.devices "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? read_device(r, 0, a->out, a->hash) : ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_device_get(store *st, const char *tid, const char *id,
                     store_device *out, uint8_t hash[STORE_SECRET_HASH_LEN]) {
  get_args a = {.tid = tid, .id = id, .out = out, .hash = hash};
  return run(st, tid, true, get_device_fn, &a);
}

/* ------------------------------------------------------------- list --- */

typedef struct list_args {
  const char *tid;
  store_device *out;
  size_t cap, *n;
} list_args;

static int list_devices_fn(db_conn *c, void *ud) {
  list_args *a = ud;
  *a->n = 0;
  db_param ps[] = {db_text(a->tid), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " DEVICE_COLS " FROM sync.devices "
                   "WHERE tenant_id = $1::uuid ORDER BY id DESC LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  for (int i = 0; rc == ERR_OK && i < db_nrows(r) && (size_t)i < a->cap; i++) {
    rc = read_device(r, i, &a->out[i], NULL);
    if (rc == ERR_OK) *a->n = (size_t)i + 1;
  }
  db_result_free(r);
  return rc;
}

int store_device_list(store *st, const char *tid, store_device *out, size_t cap,
                      size_t *n) {
  if (cap > STORE_DEVICES_MAX) cap = STORE_DEVICES_MAX;
  list_args a = {.tid = tid, .out = out, .cap = cap, .n = n};
  return run(st, tid, true, list_devices_fn, &a);
}

/* ----------------------------------------------------------- delete --- */

typedef struct delete_args {
  const char *tid, *id;
} delete_args;

static int delete_device_fn(db_conn *c, void *ud) {
  delete_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "DELETE FROM sync.devices "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid "
                   "RETURNING id",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_device_delete(store *st, const char *tid, const char *id) {
  delete_args a = {.tid = tid, .id = id};
  return run(st, tid, false, delete_device_fn, &a);
}

/* ------------------------------------------------------- heartbeats --- */

typedef struct beats_args {
  const char *tid;
  const store_beat *beats;
  size_t n;
  store_status_fn fn;
  void *arg;
} beats_args;

/* The beats as a JSON array for jsonb_to_recordset: [{"d": device,
 * "s": seen ms, "v": app_version or null, "p": pending or null}].
 * malloc'd text, or NULL (out of memory). */
static char *beats_json(const store_beat *beats, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; arr != NULL && i < n; i++) {
    const store_beat *b = &beats[i];
    json_t *o = json_pack(
        "{s:s, s:I, s:o, s:o, s:o}", "d", b->did, "s", (json_int_t)b->seen_ms,
        "v", b->app_version != NULL ? json_string(b->app_version) : json_null(),
        "p", b->pending >= 0 ? json_integer(b->pending) : json_null(), "c",
        b->cursor >= 0 ? json_integer(b->cursor) : json_null());
    if (o == NULL || json_array_append_new(arr, o) != 0) {
      json_decref(arr);
      arr = NULL;
    }
  }
  char *text = arr != NULL ? json_dumps(arr, JSON_COMPACT) : NULL;
  json_decref(arr);
  return text;
}

/* All the tenant's beats in one statement. The old online flags are read
 * under the row locks (taken in id order, so two replicas flushing one
 * tenant cannot deadlock; the offline sweep skips locked rows), so
 * exactly one transaction sees each offline -> online change. Each
 * replica flushes its own beats, in no order with the others': a beat
 * older than the row's last_seen_at (another replica flushed a later
 * one first) moves nothing, its app_version, pending and cursor included. */
static int beats_fn(db_conn *c, void *ud) {
  beats_args *a = ud;
  char *json = beats_json(a->beats, a->n);
  if (json == NULL) return ERR_NOMEM;
  db_param ps[] = {db_text(a->tid), db_text(json)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      "WITH b AS (SELECT * FROM jsonb_to_recordset($2::jsonb) "
      "    AS x(d uuid, s bigint, v text, p int, c bigint)), "
      "old AS (SELECT dv.id AS lid, dv.online AS was FROM sync.devices dv "
      "  JOIN b ON dv.id = b.d WHERE dv.tenant_id = $1::uuid "
      "  ORDER BY dv.id FOR UPDATE OF dv) "
      "UPDATE sync.devices SET "
      "  last_seen_at = greatest(last_seen_at, timestamptz 'epoch' + "
      "    b.s * interval '1 millisecond'), "
      "  app_version = CASE WHEN b.v IS NOT NULL AND (last_seen_at IS NULL "
      "    OR b.s >= floor(extract(epoch FROM last_seen_at) * 1000)) "
      "    THEN b.v ELSE app_version END, "
      "  pending = CASE WHEN b.p IS NOT NULL AND (last_seen_at IS NULL "
      "    OR b.s >= floor(extract(epoch FROM last_seen_at) * 1000)) "
      "    THEN b.p ELSE pending END, "
      "  pull_cursor = CASE WHEN b.c IS NOT NULL AND (last_seen_at IS NULL "
      "    OR b.s >= floor(extract(epoch FROM last_seen_at) * 1000)) "
      "    THEN b.c ELSE pull_cursor END, online = true "
      "FROM b JOIN old ON old.lid = b.d "
      "WHERE tenant_id = $1::uuid AND id = b.d "
      "RETURNING " DEVICE_COLS ", old.was",
      ps, DB_NPARAMS(ps), &r);
  free(json);
  int was = rc == ERR_OK ? db_col(r, "was") : -1;
  for (int i = 0; rc == ERR_OK && i < db_nrows(r); i++) {
    const char *w = db_get(r, i, was);
    if (w == NULL || w[0] != 'f' || a->fn == NULL) continue;
    store_device d;
    rc = read_device(r, i, &d, NULL);
    if (rc == ERR_OK) rc = a->fn(c, a->arg, a->tid, &d, true);
  }
  db_result_free(r);
  return rc;
}

int store_beats_apply(store *st, const char *tid, const store_beat *beats,
                      size_t n, store_status_fn fn, void *arg) {
  beats_args a = {.tid = tid, .beats = beats, .n = n, .fn = fn, .arg = arg};
  return run(st, tid, false, beats_fn, &a);
}

typedef struct sweep_args {
  int64_t stale_ms;
  size_t batch, *marked;
  store_status_fn fn;
  void *arg;
} sweep_args;

static int sweep_fn(db_conn *c, void *ud) {
  sweep_args *a = ud;
  *a->marked = 0;
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT pg_try_advisory_xact_lock("
                   "hashtextextended('sync.offline-sweep', 0)) AS got",
                   NULL, 0, &r);
  bool got = rc == ERR_OK && db_nrows(r) == 1 && db_get(r, 0, 0) != NULL &&
             db_get(r, 0, 0)[0] == 't';
  db_result_free(r);
  if (rc != ERR_OK || !got) return rc;
  db_param ps[] = {db_int64(a->stale_ms), db_int64((int64_t)a->batch)};
  rc = db_exec(c,
               "UPDATE sync.devices SET online = false "
               "WHERE (tenant_id, id) IN (SELECT tenant_id, id "
               "  FROM sync.devices WHERE online AND last_seen_at < "
               "  now() - $1::bigint * interval '1 millisecond' "
               "  LIMIT $2 FOR UPDATE SKIP LOCKED) "
               "RETURNING tenant_id::text AS tid, " DEVICE_COLS,
               ps, DB_NPARAMS(ps), &r);
  int tcol = rc == ERR_OK ? db_col(r, "tid") : -1;
  for (int i = 0; rc == ERR_OK && i < db_nrows(r); i++) {
    store_device d;
    rc = read_device(r, i, &d, NULL);
    const char *tid = db_get(r, i, tcol);
    if (rc == ERR_OK && a->fn != NULL)
      rc = a->fn(c, a->arg, tid != NULL ? tid : "", &d, false);
    if (rc == ERR_OK) (*a->marked)++;
  }
  db_result_free(r);
  return rc;
}

int store_sweep_offline(store *st, int64_t stale_ms, size_t batch,
                        store_status_fn fn, void *arg, size_t *marked) {
  size_t dummy = 0;
  sweep_args a = {.stale_ms = stale_ms,
                  .batch = batch ? batch : 1000,
                  .marked = marked != NULL ? marked : &dummy,
                  .fn = fn,
                  .arg = arg};
  /* Across tenants: the sweeper's own policy (app.sync_sweeper). */
  return db_store_run(st, NULL, "app.sync_sweeper", false, sweep_fn, &a);
}

/* ------------------------------------------------------ count online --- */

static int count_online_fn(db_conn *c, void *ud) {
  int64_t *n = ud;
  db_result *r = NULL;
  int rc =
      db_exec(c, "SELECT count(*) FROM sync.devices WHERE online", NULL, 0, &r);
  if (rc == ERR_OK && (db_nrows(r) != 1 || db_get_int64(r, 0, 0, n) != ERR_OK))
    rc = ERR_DB;
  db_result_free(r);
  return rc;
}

int store_count_online(store *st, int64_t *n) {
  *n = 0;
  return db_store_run(st, NULL, "app.sync_sweeper", true, count_online_fn, n);
}
