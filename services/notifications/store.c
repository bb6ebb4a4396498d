/*
 * store.c - endpoints and the tenant's side of deliveries (see store.h for
 * the transaction design; store_worker.c has the worker's and the
 * fan-out's statements).
 *
 * Each public function is a struct of arguments plus a static function
 * run inside db_with_tx, so every statement is parameterised (constant
 * SQL text, values as $n) and a deadlock or serialisation failure retries
 * the whole unit; the functions reset their outputs at the start of every
 * attempt. Columns are read by name (db_col), never by position. Times
 * leave the database as Unix milliseconds and are formatted here. Event
 * type lists travel as one text parameter "{A,B}" cast to text[]: the
 * types are checked against a fixed list of identifiers before they get
 * here (handlers.c), so no element needs quoting.
 */
#include "services/notifications/store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

#define ENDPOINT_COLS                                                          \
  "id::text AS id, url, array_to_string(events, ',') AS events, "              \
  "description, active, "                                                      \
  "floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms"

int store_new(db_pool *db, const char *role, store **out) {
  return db_store_new(db, role, out);
}

void store_free(store *st) { db_store_free(st); }

int store_run(store *st, const char *tid, bool read_only,
              int (*fn)(db_conn *c, void *ud), void *ud) {
  return db_store_run(st, tid, NULL, read_only, fn, ud);
}

void store_copy_col(const db_result *r, int row, const char *name, char *dst,
                    size_t cap) {
  db_copy_cell(r, row, db_col(r, name), dst, cap);
}

int store_time_col(const db_result *r, int row, const char *name,
                   char out[RFC3339_MS_LEN + 1]) {
  int c = db_col(r, name);
  out[0] = '\0';
  if (c < 0) return ERR_DB;
  if (db_is_null(r, row, c)) return ERR_OK;
  int64_t ms = 0;
  int rc = db_get_int64(r, row, c, &ms);
  return rc == ERR_OK ? time_format_rfc3339(ms, out) : rc;
}

int store_events_literal(const char *const *events, size_t n, char *out,
                         size_t cap) {
  size_t used = 0;
  out[used++] = '{';
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(events[i]);
    if (used + len + 3 > cap) return ERR_TOOBIG;
    if (i > 0) out[used++] = ',';
    memcpy(out + used, events[i], len);
    used += len;
  }
  out[used++] = '}';
  out[used] = '\0';
  return ERR_OK;
}

/* The events column ("A,B") into out. */
static void split_events(const char *s, store_endpoint *out) {
  out->nevents = 0;
  while (s != NULL && *s != '\0' && out->nevents < STORE_EVENTS_MAX) {
    const char *comma = strchr(s, ',');
    size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
    if (len > STORE_EVENT_TYPE_MAX) len = STORE_EVENT_TYPE_MAX;
    memcpy(out->events[out->nevents], s, len);
    out->events[out->nevents++][len] = '\0';
    s = comma != NULL ? comma + 1 : NULL;
  }
}

/* Row row of r into *out. */
static int read_endpoint(const db_result *r, int row, store_endpoint *out) {
  memset(out, 0, sizeof *out);
  int ev = db_col(r, "events"), act = db_col(r, "active");
  if (ev < 0 || act < 0) return ERR_DB;
  store_copy_col(r, row, "id", out->id, sizeof out->id);
  store_copy_col(r, row, "url", out->url, sizeof out->url);
  store_copy_col(r, row, "description", out->description,
                 sizeof out->description);
  split_events(db_get(r, row, ev), out);
  int rc = db_get_bool(r, row, act, &out->active);
  if (rc == ERR_OK) rc = store_time_col(r, row, "created_ms", out->created_at);
  return rc;
}

static int read_one_endpoint(const db_result *r, store_endpoint *out) {
  return db_nrows(r) == 1 ? read_endpoint(r, 0, out) : ERR_NOTFOUND;
}

/* ----------------------------------------------------------- create --- */

typedef struct create_args {
  const char *tid;
  const store_endpoint_in *in;
  const seal_box *secret;
  size_t max;
  idem_once *key;
  store_endpoint *out;
} create_args;

static int count_endpoints(db_conn *c, const char *tid, int64_t *n) {
  db_param ps[] = {db_text(tid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT count(*) AS n FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK) rc = db_get_int64(r, 0, db_col(r, "n"), n);
  db_result_free(r);
  return rc;
}

static int create_endpoint_fn(db_conn *c, void *ud) {
  create_args *a = ud;
  memset(a->out, 0, sizeof *a->out);
  int rc = idem_once_begin(c, a->key);
  if (rc != ERR_OK || !idem_once_fresh(a->key)) return rc;
  /* Serialises creations of one tenant so the limit holds. */
  db_param lk[] = {db_text(a->tid)};
  rc = db_exec(c, "SELECT pg_advisory_xact_lock(hashtext($1))", lk,
               DB_NPARAMS(lk), NULL);
  int64_t n = 0;
  if (rc == ERR_OK) rc = count_endpoints(c, a->tid, &n);
  if (rc == ERR_OK && (size_t)n >= a->max) rc = ERR_TOOBIG;
  char events[STORE_EVENTS_MAX * (STORE_EVENT_TYPE_MAX + 1) + 3];
  if (rc == ERR_OK)
    rc = store_events_literal(a->in->events, a->in->nevents, events,
                              sizeof events);
  if (rc != ERR_OK) return rc;
  char id[UUID_STR_LEN + 1];
  int64_t id_ms = uuid_v7_str(id);
  db_param ps[] = {db_text(a->tid),
                   db_text(id),
                   db_text(a->in->url),
                   db_text(events),
                   db_text(a->in->description ? a->in->description : ""),
                   db_bytes(a->secret->b, sizeof a->secret->b),
                   db_int64(id_ms)};
  db_result *r = NULL;
  rc = db_exec(c,
               "INSERT INTO notifications.endpoints (tenant_id, id, url, "
               "events, description, secret_box, created_at, updated_at) "
               "VALUES ($1::uuid, $2::uuid, $3, $4::text[], $5, $6, "
               "timestamptz 'epoch' + $7::bigint * interval '1 millisecond', "
               "timestamptz 'epoch' + $7::bigint * interval '1 millisecond') "
               "RETURNING " ENDPOINT_COLS,
               ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK) rc = read_one_endpoint(r, a->out);
  db_result_free(r);
  return rc == ERR_OK ? idem_once_save(c, a->key, a->out) : rc;
}

int store_create_endpoint(store *st, const char *tid,
                          const store_endpoint_in *in, const seal_box *secret,
                          size_t max, idem_once *key, store_endpoint *out) {
  create_args a = {.tid = tid,
                   .in = in,
                   .secret = secret,
                   .max = max,
                   .key = key,
                   .out = out};
  return store_run(st, tid, false, create_endpoint_fn, &a);
}

/* ------------------------------------------------------- list / get --- */

typedef struct list_args {
  const char *tid;
  size_t max;
  store_endpoints *out;
} list_args;

void store_endpoints_free(store_endpoints *l) {
  if (l == NULL) return;
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int list_endpoints_fn(db_conn *c, void *ud) {
  list_args *a = ud;
  store_endpoints_free(a->out);
  db_param ps[] = {db_text(a->tid), db_int64((int64_t)a->max)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " ENDPOINT_COLS " FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid ORDER BY id DESC LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  int n = rc == ERR_OK ? db_nrows(r) : 0;
  if (rc == ERR_OK && n > 0) {
    a->out->v = calloc((size_t)n, sizeof *a->out->v);
    if (a->out->v == NULL) rc = ERR_NOMEM;
  }
  for (int i = 0; rc == ERR_OK && i < n; i++) {
    rc = read_endpoint(r, i, &a->out->v[i]);
    a->out->n++;
  }
  db_result_free(r);
  return rc;
}

int store_list_endpoints(store *st, const char *tid, size_t max,
                         store_endpoints *out) {
  memset(out, 0, sizeof *out);
  list_args a = {.tid = tid, .max = max, .out = out};
  int rc = store_run(st, tid, true, list_endpoints_fn, &a);
  if (rc != ERR_OK) store_endpoints_free(out);
  return rc;
}

typedef struct one_args {
  const char *tid, *id;
  const store_endpoint_in *in;
  const seal_box *next;
  int64_t grace_ms;
  store_endpoint *out;
} one_args;

static int get_endpoint_fn(db_conn *c, void *ud) {
  one_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " ENDPOINT_COLS " FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK) rc = read_one_endpoint(r, a->out);
  db_result_free(r);
  return rc;
}

int store_get_endpoint(store *st, const char *tid, const char *id,
                       store_endpoint *out) {
  one_args a = {.tid = tid, .id = id, .out = out};
  return store_run(st, tid, true, get_endpoint_fn, &a);
}

/* ----------------------------------------------------------- update --- */

static int update_endpoint_fn(db_conn *c, void *ud) {
  one_args *a = ud;
  const store_endpoint_in *in = a->in;
  char events[STORE_EVENTS_MAX * (STORE_EVENT_TYPE_MAX + 1) + 3];
  int rc = ERR_OK;
  if (in->nevents > 0)
    rc = store_events_literal(in->events, in->nevents, events, sizeof events);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_text(a->tid),
                   db_text(a->id),
                   db_text(in->url),
                   in->nevents > 0 ? db_text(events) : db_null(),
                   db_text(in->description),
                   in->active != NULL ? db_bool(*in->active) : db_null()};
  db_result *r = NULL;
  rc = db_exec(c,
               "UPDATE notifications.endpoints SET "
               "url = COALESCE($3, url), "
               "events = COALESCE($4::text[], events), "
               "description = COALESCE($5, description), "
               "active = COALESCE($6::boolean, active), updated_at = now() "
               "WHERE tenant_id = $1::uuid AND id = $2::uuid "
               "RETURNING " ENDPOINT_COLS,
               ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK) rc = read_one_endpoint(r, a->out);
  db_result_free(r);
  return rc;
}

int store_update_endpoint(store *st, const char *tid, const char *id,
                          const store_endpoint_in *in, store_endpoint *out) {
  one_args a = {.tid = tid, .id = id, .in = in, .out = out};
  return store_run(st, tid, false, update_endpoint_fn, &a);
}

/* ---------------------------------------------------- delete, rotate --- */

static int delete_endpoint_fn(db_conn *c, void *ud) {
  one_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "DELETE FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_affected(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_delete_endpoint(store *st, const char *tid, const char *id) {
  one_args a = {.tid = tid, .id = id};
  return store_run(st, tid, false, delete_endpoint_fn, &a);
}

static int rotate_fn(db_conn *c, void *ud) {
  one_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id),
                   db_bytes(a->next->b, sizeof a->next->b),
                   db_int64(a->grace_ms)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      "UPDATE notifications.endpoints SET prev_secret_box = secret_box, "
      "prev_secret_until = now() + $4::bigint * interval '1 millisecond', "
      "secret_box = $3, updated_at = now() "
      "WHERE tenant_id = $1::uuid AND id = $2::uuid",
      ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_affected(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_rotate_secret(store *st, const char *tid, const char *id,
                        const seal_box *next, int64_t grace_ms) {
  one_args a = {.tid = tid, .id = id, .next = next, .grace_ms = grace_ms};
  return store_run(st, tid, false, rotate_fn, &a);
}
