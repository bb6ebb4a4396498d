/*
 * store_fanout.c - a batch of bus events fanned out in one transaction
 * (store_fanout_batch, see store.h).
 *
 * Why a batch: store_fanout costs about six round trips to PostgreSQL per
 * event (BEGIN, the settings, the endpoints, the insert, the position,
 * COMMIT), so a catch-up or a burst went at the database's latency, one
 * event at a time (docs/PERFORMANCE.md, "Notifications"). Here a page of
 * events costs, per tenant in it, one read of the tenant's (endpoint,
 * event type) pairs and one INSERT of all its webhook deliveries - the
 * rows travel as one JSON parameter read by json_to_recordset, so the
 * statement text (and its prepared statement) is the same whatever the
 * batch's size - plus one position update and one commit for the batch.
 *
 * Tenants. The transaction starts without a tenant and sets app.tenant_id
 * with set_config(..., true) (what db_begin does for store_run(tid)) for
 * each tenant of the batch in turn before touching its rows, so
 * row-level security binds every statement to the tenant it is for; each
 * statement also names the tenant explicitly.
 *
 * Idempotency is store_fanout's: ON CONFLICT (tenant, endpoint, event) DO
 * NOTHING, and only the rows really inserted (RETURNING) become jobs.
 * E-mails, SMS and in-app notifications (rare: not on OrderCreated) go
 * through the same per-event helpers as store_fanout, inside the batch's
 * transaction.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "services/notifications/store_inbox.h"
#include "services/notifications/store_internal.h"

typedef struct batch_args {
  const store_fanout_in *in;
  size_t n;
  bool *done; /* in[i] handled with its tenant's group */
  store_job *jobs;
  size_t njobs;
  size_t inbox_added;
} batch_args;

int store_set_tenant(db_conn *c, const char *tid) {
  db_param ps[] = {db_text(tid)};
  return db_exec(c, "SELECT set_config('app.tenant_id', $1, true)", ps,
                 DB_NPARAMS(ps), NULL);
}

/* One row per (active endpoint of tid, event type it subscribes to). */
static int endpoint_types(db_conn *c, const char *tid, db_result **r) {
  db_param ps[] = {db_text(tid)};
  return db_exec(c,
                 "SELECT e.id::text AS id, t.type FROM notifications.endpoints "
                 "e CROSS JOIN LATERAL unnest(e.events) AS t(type) "
                 "WHERE e.tenant_id = $1::uuid AND e.active",
                 ps, DB_NPARAMS(ps), r);
}

/* A delivery row of event in to every endpoint subscribed to its type,
 * each with a new UUIDv7 id (created_at is its time, as insert_delivery
 * does). ERR_INVAL for a body jansson refuses (not UTF-8). */
static int add_rows(json_t *rows, const store_fanout_in *in,
                    const db_result *eps) {
  int idc = db_col(eps, "id"), tc = db_col(eps, "type");
  for (int i = 0; i < db_nrows(eps); i++) {
    const char *type = db_get(eps, i, tc);
    if (type == NULL || strcmp(type, in->type) != 0) continue;
    uuid u;
    char id[UUID_STR_LEN + 1];
    uuid_v7(&u);
    uuid_format(&u, id);
    json_t *row = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I}", "id", id, "endpoint_id",
        db_get(eps, i, idc), "event_id", in->event_id, "event_type", in->type,
        "body", in->body, "created_ms", (json_int_t)uuid_v7_time_ms(&u));
    if (row == NULL) return ERR_INVAL;
    if (json_array_append_new(rows, row) != 0) return ERR_NOMEM;
  }
  return ERR_OK;
}

/* The rows of tenant tid in one statement; the inserted ones' jobs
 * appended to a->jobs. */
static int insert_rows(db_conn *c, batch_args *a, const char *tid,
                       const json_t *rows) {
  if (json_array_size(rows) == 0) return ERR_OK;
  char *text = json_dumps(rows, JSON_COMPACT);
  if (text == NULL) return ERR_NOMEM;
  db_param ps[] = {db_text(tid), db_text(text)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      "INSERT INTO notifications.deliveries (tenant_id, id, endpoint_id, "
      "event_id, event_type, body, next_attempt_at, created_at, updated_at) "
      "SELECT $1::uuid, r.id, r.endpoint_id, r.event_id, r.event_type, "
      "r.body, now(), timestamptz 'epoch' + r.created_ms "
      "* interval '1 millisecond', now() FROM json_to_recordset($2::json) "
      "AS r(id uuid, endpoint_id uuid, event_id uuid, event_type text, "
      "body text, created_ms bigint) "
      "ON CONFLICT (tenant_id, endpoint_id, event_id) DO NOTHING "
      "RETURNING id::text AS id",
      ps, DB_NPARAMS(ps), &r);
  free(text);
  int n = rc == ERR_OK ? db_nrows(r) : 0, col = db_col(r, "id");
  store_job *more =
      n > 0 ? realloc(a->jobs, (a->njobs + (size_t)n) * sizeof *more) : NULL;
  if (n > 0 && more == NULL) rc = ERR_NOMEM;
  if (more != NULL) a->jobs = more;
  for (int i = 0; rc == ERR_OK && i < n; i++) {
    store_job *j = &a->jobs[a->njobs++];
    str_copy(j->tid, tid, sizeof j->tid);
    str_copy(j->id, db_get(r, i, col), sizeof j->id);
  }
  db_result_free(r);
  return rc;
}

/* E-mails, SMS and in-app notifications of in (tenant tid, already set). */
static int add_others(db_conn *c, batch_args *a, const store_fanout_in *in) {
  int rc = ERR_OK;
  if (in->nmessages > 0)
    rc = store_add_messages(c, in->tid, in->event_id, in->type, in->messages,
                            in->nmessages, &a->jobs, &a->njobs);
  if (rc == ERR_OK && in->ninbox > 0)
    rc = store_inbox_add(c, in->tid, in->event_id, in->inbox, in->ninbox,
                         &a->inbox_added);
  return rc;
}

/* Every event of the batch of tenant in[first].tid. */
static int tenant_group(db_conn *c, batch_args *a, size_t first) {
  const char *tid = a->in[first].tid;
  db_result *eps = NULL;
  int rc = store_set_tenant(c, tid);
  if (rc == ERR_OK) rc = endpoint_types(c, tid, &eps);
  json_t *rows = json_array();
  if (rc == ERR_OK && rows == NULL) rc = ERR_NOMEM;
  for (size_t i = first; rc == ERR_OK && i < a->n; i++) {
    if (a->done[i] || strcmp(a->in[i].tid, tid) != 0) continue;
    a->done[i] = true;
    rc = add_rows(rows, &a->in[i], eps);
  }
  if (rc == ERR_OK) rc = insert_rows(c, a, tid, rows);
  for (size_t i = first; rc == ERR_OK && i < a->n; i++)
    if (strcmp(a->in[i].tid, tid) == 0) rc = add_others(c, a, &a->in[i]);
  json_decref(rows);
  db_result_free(eps);
  return rc;
}

static int batch_fn(db_conn *c, void *ud) {
  batch_args *a = ud;
  free(a->jobs); /* a retried transaction starts over */
  a->jobs = NULL;
  a->njobs = 0;
  a->inbox_added = 0;
  memset(a->done, 0, a->n * sizeof *a->done);
  int rc = ERR_OK;
  for (size_t i = 0; rc == ERR_OK && i < a->n; i++)
    if (!a->done[i] && a->in[i].tid[0] != '\0') rc = tenant_group(c, a, i);
  /* The last seq of each source (a bus batch has one). */
  for (size_t i = 0; rc == ERR_OK && i < a->n; i++)
    if (i + 1 == a->n || strcmp(a->in[i].source, a->in[i + 1].source) != 0)
      rc = store_save_position(c, a->in[i].source, a->in[i].seq);
  return rc;
}

int store_fanout_batch(store *st, const store_fanout_in *in, size_t n,
                       store_job **jobs, size_t *njobs, size_t *inbox_added) {
  *jobs = NULL;
  *njobs = 0;
  *inbox_added = 0;
  if (n == 0) return ERR_OK;
  batch_args a = {.in = in, .n = n, .done = calloc(n, sizeof(bool))};
  if (a.done == NULL) return ERR_NOMEM;
  int rc = store_run(st, NULL, false, batch_fn, &a);
  free(a.done);
  if (rc != ERR_OK) {
    free(a.jobs);
    return rc;
  }
  *jobs = a.jobs;
  *njobs = a.njobs;
  *inbox_added = a.inbox_added;
  return ERR_OK;
}
