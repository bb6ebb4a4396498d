/*
 * store.c - the notifications service's SQL (see store.h for the transaction
 * design).
 *
 * Each public function is a struct of arguments plus a static function
 * run inside db_with_tx, so every statement is parameterised (constant
 * SQL text, values as $n) and a deadlock or serialisation failure retries
 * the whole unit; the functions reset their outputs at the start of every
 * attempt. Columns are read by name (db_col), never by position. Times
 * leave the database as Unix milliseconds and are formatted here.
 */
#include "services/notifications/store.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

/* The columns of an item, as read_item reads them (by name). */
#define ITEM_COLS                                                          \
  "id::text AS id, name, "                                                 \
  "floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms"

int store_new(db_pool *db, const char *role, store **out) {
  return db_store_new(db, role, out);
}

void store_free(store *st) { db_store_free(st); }

/* Runs fn in a transaction of tenant tid as the store's role (with
 * libs/db's retries of deadlocks and serialisation failures). */
static int run(store *st, const char *tid, bool read_only,
               int (*fn)(db_conn *c, void *ud), void *ud) {
  db_tx_opts o = {.tenant_id = tid, .read_only = read_only};
  return db_store_tx(st, &o, fn, ud);
}

/* Row 0 of r into *out. ERR_NOTFOUND without a row. */
static int read_item(const db_result *r, store_item *out) {
  if (db_nrows(r) != 1)
    return ERR_NOTFOUND;
  int id = db_col(r, "id"), name = db_col(r, "name"),
      created = db_col(r, "created_ms");
  if (id < 0 || name < 0 || created < 0)
    return ERR_DB;
  const char *v = db_get(r, 0, id);
  str_copy(out->id, v != NULL ? v : "", sizeof out->id);
  v = db_get(r, 0, name);
  str_copy(out->name, v != NULL ? v : "", sizeof out->name);
  int64_t ms = 0;
  int rc = db_get_int64(r, 0, created, &ms);
  if (rc == ERR_OK)
    rc = time_format_rfc3339(ms, out->created_at);
  return rc;
}

/* ----------------------------------------------------------- create --- */

typedef struct create_args {
  const char *tid, *name;
  store_item *out;
} create_args;

static int create_item_fn(db_conn *c, void *ud) {
  create_args *a = ud;
  memset(a->out, 0, sizeof *a->out);
  uuid u;
  uuid_v7(&u);
  char id[UUID_STR_LEN + 1];
  uuid_format(&u, id);
  db_param ps[] = {db_text(a->tid), db_text(id), db_text(a->name),
                   db_int64(uuid_v7_time_ms(&u))};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "INSERT INTO notifications.items (tenant_id, id, name, created_at) "
                   "VALUES ($1::uuid, $2::uuid, $3, "
                   "timestamptz 'epoch' + $4::bigint * interval '1 millisecond') "
                   "RETURNING " ITEM_COLS,
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = read_item(r, a->out);
  db_result_free(r);
  return rc;
}

int store_create_item(store *st, const char *tid, const char *name,
                      store_item *out) {
  create_args a = {.tid = tid, .name = name, .out = out};
  return run(st, tid, false, create_item_fn, &a);
}

/* -------------------------------------------------------------- get --- */

typedef struct get_args {
  const char *tid, *id;
  store_item *out;
} get_args;

static int get_item_fn(db_conn *c, void *ud) {
  get_args *a = ud;
  memset(a->out, 0, sizeof *a->out);
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " ITEM_COLS " FROM notifications.items "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = read_item(r, a->out);
  db_result_free(r);
  return rc;
}

int store_get_item(store *st, const char *tid, const char *id,
                   store_item *out) {
  get_args a = {.tid = tid, .id = id, .out = out};
  return run(st, tid, true, get_item_fn, &a);
}
