/*
 * store_deliveries.c - deliveries: the fan-out of an event, the tenant's
 * view (list, retry), and the worker's claim and record (see store.h).
 *
 * A delivery moves pending -> succeeded | dead, and dead -> pending only
 * by RetryDelivery. The worker's claim is a lease (lease_until): one
 * sender at a time however many jobs name the delivery (a job redelivered
 * by XAUTOCLAIM, one re-queued by the sweeper, a second replica), and a
 * claim is refused once the delivery is succeeded - the rule that a
 * receiver that answered 2xx (recorded) never gets the event again.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "services/notifications/store_inbox.h"
#include "services/notifications/store_internal.h"

#define DELIVERY_COLS                                                          \
  "id::text AS id, event_id::text AS event_id, event_type, status, "           \
  "attempts, COALESCE(last_status_code, 0) AS last_status_code, "              \
  "COALESCE(last_error, '') AS last_error, "                                   \
  "floor(extract(epoch FROM next_attempt_at) * 1000)::bigint AS next_ms, "     \
  "floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms, "       \
  "floor(extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms"

#define MS "* interval '1 millisecond'"
#define ENDPOINT_OF_D "e.tenant_id = d.tenant_id AND e.id = d.endpoint_id"

static const char *const kStatus[] = {NULL, "pending", "succeeded", "dead"};

static int status_of(const char *s) {
  for (int i = STORE_PENDING; i <= STORE_DEAD; i++)
    if (s != NULL && strcmp(s, kStatus[i]) == 0) return i;
  return 0;
}

/* Mints a delivery id and inserts endpoint's delivery of the event unless
 * it has one; *inserted says which. */
static int insert_delivery(db_conn *c, const char *tid, const char *endpoint,
                           const char *event_id, const char *type,
                           const char *body, char id[UUID_STR_LEN + 1],
                           bool *inserted) {
  int64_t id_ms = uuid_v7_str(id);
  db_param ps[] = {db_text(tid),      db_text(id),   db_text(endpoint),
                   db_text(event_id), db_text(type), db_text(body),
                   db_int64(id_ms)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      "INSERT INTO notifications.deliveries (tenant_id, id, endpoint_id, "
      "event_id, event_type, body, next_attempt_at, created_at, updated_at) "
      "VALUES ($1::uuid, $2::uuid, $3::uuid, $4::uuid, $5, $6, now(), "
      "timestamptz 'epoch' + $7::bigint " MS ", now()) "
      "ON CONFLICT (tenant_id, endpoint_id, event_id) DO NOTHING",
      ps, DB_NPARAMS(ps), &r);
  *inserted = rc == ERR_OK && db_affected(r) == 1;
  db_result_free(r);
  return rc;
}

/* ----------------------------------------------------------- fan-out --- */

typedef struct fanout_args {
  const store_fanout_in *in;
  const char *tid, *event_id, *type, *body;
  store_job *jobs;
  size_t njobs;
  size_t inbox_added;
} fanout_args;

int store_save_position(db_conn *c, const char *source, uint64_t seq) {
  db_param ps[] = {db_text(source), db_int64((int64_t)seq)};
  return db_exec(c,
                 "INSERT INTO notifications.bus_positions (source, last_seq) "
                 "VALUES ($1, $2) ON CONFLICT (source) DO UPDATE SET "
                 "last_seq = GREATEST(bus_positions.last_seq, "
                 "EXCLUDED.last_seq)",
                 ps, DB_NPARAMS(ps), NULL);
}

static int fanout_endpoints(db_conn *c, fanout_args *a) {
  db_param ps[] = {db_text(a->tid), db_text(a->type)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT id::text AS id FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid AND active AND $2 = ANY(events)",
                   ps, DB_NPARAMS(ps), &r);
  int n = rc == ERR_OK ? db_nrows(r) : 0, col = db_col(r, "id");
  if (n > 0 && (a->jobs = calloc((size_t)n, sizeof *a->jobs)) == NULL)
    rc = ERR_NOMEM;
  for (int i = 0; rc == ERR_OK && i < n; i++) {
    bool inserted = false;
    store_job *j = &a->jobs[a->njobs];
    rc = insert_delivery(c, a->tid, db_get(r, i, col), a->event_id, a->type,
                         a->body, j->id, &inserted);
    if (rc == ERR_OK && inserted) {
      str_copy(j->tid, a->tid, sizeof j->tid);
      a->njobs++;
    }
  }
  db_result_free(r);
  return rc;
}

static const char *const kKinds[] = {"webhook", "email", "sms"};

static int kind_of(const char *s) {
  for (int i = STORE_KIND_WEBHOOK; i <= STORE_KIND_SMS; i++)
    if (s != NULL && strcmp(s, kKinds[i]) == 0) return i;
  return STORE_KIND_WEBHOOK;
}

int store_add_messages(db_conn *c, const char *tid, const char *event_id,
                       const char *type, const store_message *msgs, size_t n,
                       store_job **jobs, size_t *njobs) {
  store_job *more = realloc(*jobs, (*njobs + n + 1) * sizeof *more);
  if (more == NULL) return ERR_NOMEM;
  *jobs = more;
  for (size_t i = 0; i < n; i++) {
    const store_message *m = &msgs[i];
    store_job *j = &(*jobs)[*njobs];
    int64_t id_ms = uuid_v7_str(j->id);
    db_param ps[] = {db_text(tid),
                     db_text(j->id),
                     db_text(event_id),
                     db_text(type),
                     db_text(m->body),
                     db_int64(id_ms),
                     db_text(kKinds[m->kind == STORE_KIND_SMS ? 2 : 1]),
                     db_text(m->user_id),
                     db_text(m->address),
                     db_text(m->subject)};
    db_result *r = NULL;
    int rc = db_exec(
        c,
        "INSERT INTO notifications.deliveries (tenant_id, id, event_id, "
        "event_type, body, next_attempt_at, created_at, updated_at, kind, "
        "user_id, address, subject) VALUES ($1::uuid, $2::uuid, $3::uuid, "
        "$4, $5, now(), timestamptz 'epoch' + $6::bigint " MS ", now(), $7, "
        "$8::uuid, $9, $10) ON CONFLICT (tenant_id, kind, user_id, event_id) "
        "WHERE kind <> 'webhook' DO NOTHING",
        ps, DB_NPARAMS(ps), &r);
    bool inserted = rc == ERR_OK && db_affected(r) == 1;
    db_result_free(r);
    if (rc != ERR_OK) return rc;
    if (inserted) {
      str_copy(j->tid, tid, sizeof j->tid);
      (*njobs)++;
    }
  }
  return ERR_OK;
}

static int fanout_fn(db_conn *c, void *ud) {
  fanout_args *a = ud;
  free(a->jobs);
  a->jobs = NULL;
  a->njobs = 0;
  a->inbox_added = 0;
  int rc = a->tid[0] != '\0' ? fanout_endpoints(c, a) : ERR_OK;
  if (rc == ERR_OK && a->tid[0] != '\0' && a->in->nmessages > 0)
    rc = store_add_messages(c, a->tid, a->event_id, a->type, a->in->messages,
                            a->in->nmessages, &a->jobs, &a->njobs);
  if (rc == ERR_OK && a->tid[0] != '\0' && a->in->ninbox > 0)
    rc = store_inbox_add(c, a->tid, a->event_id, a->in->inbox, a->in->ninbox,
                         &a->inbox_added);
  if (rc == ERR_OK) rc = store_save_position(c, a->in->source, a->in->seq);
  return rc;
}

int store_fanout(store *st, const store_fanout_in *in, store_job **jobs,
                 size_t *njobs, size_t *inbox_added) {
  fanout_args a = {.in = in,
                   .tid = in->tid,
                   .event_id = in->event_id,
                   .type = in->type,
                   .body = in->body};
  int rc = store_run(st, in->tid[0] ? in->tid : NULL, false, fanout_fn, &a);
  if (rc != ERR_OK) {
    free(a.jobs);
    a.jobs = NULL;
    a.njobs = 0;
    a.inbox_added = 0;
  }
  *jobs = a.jobs;
  *njobs = a.njobs;
  *inbox_added = a.inbox_added;
  return rc;
}

typedef struct test_args {
  const char *tid, *id, *event_id, *body;
  store_job *job;
} test_args;

static int test_delivery_fn(db_conn *c, void *ud) {
  test_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT 1 FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  bool inserted = false;
  if (rc == ERR_OK)
    rc = insert_delivery(c, a->tid, a->id, a->event_id, "webhook.test", a->body,
                         a->job->id, &inserted);
  str_copy(a->job->tid, a->tid, sizeof a->job->tid);
  return rc;
}

int store_test_delivery(store *st, const char *tid, const char *id,
                        const char *event_id, const char *body,
                        store_job *job) {
  test_args a = {
      .tid = tid, .id = id, .event_id = event_id, .body = body, .job = job};
  return store_run(st, tid, false, test_delivery_fn, &a);
}

static int position_fn(db_conn *c, void *ud) {
  void **a = ud;
  db_param ps[] = {db_text(a[0])};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT last_seq FROM notifications.bus_positions "
                   "WHERE source = $1",
                   ps, DB_NPARAMS(ps), &r);
  int64_t v = 0;
  if (rc == ERR_OK && db_nrows(r) == 1)
    rc = db_get_int64(r, 0, db_col(r, "last_seq"), &v);
  *(uint64_t *)a[1] = (uint64_t)v;
  db_result_free(r);
  return rc;
}

int store_position(store *st, const char *source, uint64_t *seq) {
  void *a[] = {(void *)source, seq};
  *seq = 0;
  return store_run(st, NULL, true, position_fn, a);
}

/* -------------------------------------------------- tenant's view --- */

void store_deliveries_free(store_deliveries *l) {
  if (l == NULL) return;
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int read_delivery(const db_result *r, int row, store_delivery *d) {
  memset(d, 0, sizeof *d);
  char status[16];
  store_copy_col(r, row, "id", d->id, sizeof d->id);
  store_copy_col(r, row, "event_id", d->event_id, sizeof d->event_id);
  store_copy_col(r, row, "event_type", d->event_type, sizeof d->event_type);
  store_copy_col(r, row, "last_error", d->last_error, sizeof d->last_error);
  store_copy_col(r, row, "status", status, sizeof status);
  d->status = status_of(status);
  int64_t att = 0, code = 0;
  int rc = db_get_int64(r, row, db_col(r, "attempts"), &att);
  if (rc == ERR_OK)
    rc = db_get_int64(r, row, db_col(r, "last_status_code"), &code);
  d->attempts = (int)att;
  d->last_status_code = (int)code;
  if (rc == ERR_OK) rc = store_time_col(r, row, "next_ms", d->next_attempt_at);
  if (rc == ERR_OK) rc = store_time_col(r, row, "created_ms", d->created_at);
  if (rc == ERR_OK) rc = store_time_col(r, row, "updated_ms", d->updated_at);
  return rc;
}

typedef struct ldel_args {
  const char *tid, *endpoint_id, *before_id;
  int status;
  size_t limit;
  store_deliveries *out;
  bool *more;
} ldel_args;

static int list_deliveries_fn(db_conn *c, void *ud) {
  ldel_args *a = ud;
  store_deliveries_free(a->out);
  *a->more = false;
  db_param ep[] = {db_text(a->tid), db_text(a->endpoint_id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT 1 FROM notifications.endpoints "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ep, DB_NPARAMS(ep), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  r = NULL;
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_text(a->tid), db_text(a->endpoint_id),
                   db_text(a->status ? kStatus[a->status] : NULL),
                   db_text(a->before_id), db_int64((int64_t)a->limit + 1)};
  rc = db_exec(c,
               "SELECT " DELIVERY_COLS " FROM notifications.deliveries "
               "WHERE tenant_id = $1::uuid AND endpoint_id = $2::uuid "
               "AND ($3::text IS NULL OR status = $3) "
               "AND ($4::uuid IS NULL OR id < $4::uuid) "
               "ORDER BY id DESC LIMIT $5",
               ps, DB_NPARAMS(ps), &r);
  size_t n = rc == ERR_OK ? db_page_rows(r, a->limit, a->more) : 0;
  if (n > 0 && (a->out->v = calloc(n, sizeof *a->out->v)) == NULL)
    rc = ERR_NOMEM;
  for (size_t i = 0; rc == ERR_OK && i < n; i++) {
    rc = read_delivery(r, (int)i, &a->out->v[i]);
    a->out->n++;
  }
  db_result_free(r);
  return rc;
}

int store_list_deliveries(store *st, const char *tid, const char *endpoint_id,
                          int status, const char *before_id, size_t limit,
                          store_deliveries *out, bool *more) {
  memset(out, 0, sizeof *out);
  ldel_args a = {
      .tid = tid,
      .endpoint_id = endpoint_id,
      .before_id = before_id,
      .status = status >= STORE_PENDING && status <= STORE_DEAD ? status : 0,
      .limit = limit,
      .out = out,
      .more = more};
  int rc = store_run(st, tid, true, list_deliveries_fn, &a);
  if (rc != ERR_OK) store_deliveries_free(out);
  return rc;
}

typedef struct retry_args {
  const char *tid, *id;
  bool *was_dead;
} retry_args;

static int retry_fn(db_conn *c, void *ud) {
  retry_args *a = ud;
  *a->was_dead = false;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT status FROM notifications.deliveries "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid FOR UPDATE",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  char status[16] = "";
  if (rc == ERR_OK) store_copy_col(r, 0, "status", status, sizeof status);
  db_result_free(r);
  if (rc != ERR_OK || status_of(status) != STORE_DEAD) return rc;
  *a->was_dead = true;
  rc = store_trim_attempts(c, a->tid, a->id, STORE_ATTEMPTS_KEEP);
  if (rc != ERR_OK) return rc;
  return db_exec(c,
                 "UPDATE notifications.deliveries SET status = 'pending', "
                 "attempts = 0, next_attempt_at = now(), lease_until = NULL, "
                 "updated_at = now() "
                 "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                 ps, DB_NPARAMS(ps), NULL);
}

typedef struct get_args {
  const char *tid, *id;
  store_delivery *d;
  store_attempt_entry **attempts;
  size_t *n;
} get_args;

static int get_delivery_fn(db_conn *c, void *ud) {
  get_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " DELIVERY_COLS " FROM notifications.deliveries "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) rc = read_delivery(r, 0, a->d);
  db_result_free(r);
  free(*a->attempts); /* a retried transaction starts over */
  *a->attempts = NULL;
  *a->n = 0;
  if (rc != ERR_OK) return rc;
  return store_list_attempts(c, a->tid, a->id, STORE_ATTEMPTS_LIST_MAX,
                             a->attempts, a->n);
}

int store_get_delivery(store *st, const char *tid, const char *id,
                       store_delivery *d, store_attempt_entry **attempts,
                       size_t *n) {
  *attempts = NULL;
  *n = 0;
  get_args a = {.tid = tid, .id = id, .d = d, .attempts = attempts, .n = n};
  int rc = store_run(st, tid, true, get_delivery_fn, &a);
  if (rc != ERR_OK) {
    free(*attempts);
    *attempts = NULL;
    *n = 0;
  }
  return rc;
}

int store_retry_delivery(store *st, const char *tid, const char *id,
                         bool *was_dead) {
  retry_args a = {.tid = tid, .id = id, .was_dead = was_dead};
  return store_run(st, tid, false, retry_fn, &a);
}

/* ----------------------------------------------------------- worker --- */

void store_attempt_clear(store_attempt *a) {
  free(a->body);
  sodium_memzero(a, sizeof *a);
}

typedef struct claim_args {
  const store_job *job;
  int64_t lease_ms, slack_ms;
  int *res;
  store_attempt *out;
} claim_args;

/* Why a claim found nothing: another worker's lease, or nothing to do. */
static int unclaimed(db_conn *c, const claim_args *a) {
  db_param ps[] = {db_text(a->job->tid), db_text(a->job->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT 1 FROM notifications.deliveries "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid "
                   "AND status = 'pending' AND lease_until >= now()",
                   ps, DB_NPARAMS(ps), &r);
  *a->res =
      rc == ERR_OK && db_nrows(r) == 1 ? STORE_CLAIM_LEASED : STORE_CLAIM_SPENT;
  db_result_free(r);
  return rc;
}

/* The sealed secrets of row `row` into out. */
static int read_keys(const db_result *r, int row, store_attempt *out) {
  unsigned char *b = NULL;
  size_t len = 0;
  int rc = db_get_bytes(r, row, db_col(r, "secret_box"), &b, &len);
  if (rc == ERR_OK && len != sizeof out->key.b) rc = ERR_DB;
  if (rc == ERR_OK) memcpy(out->key.b, b, len);
  free(b);
  int pc = db_col(r, "prev_box");
  if (rc != ERR_OK || pc < 0 || db_is_null(r, row, pc)) return rc;
  b = NULL;
  rc = db_get_bytes(r, row, pc, &b, &len);
  if (rc == ERR_OK && len == sizeof out->prev.b) {
    memcpy(out->prev.b, b, len);
    out->has_prev = true;
  }
  free(b);
  return rc;
}

/* The claim: pending, due within the slack, not leased by another
 * worker, and (a webhook) its endpoint still there. The endpoint's
 * columns come through subqueries: an e-mail has none. */
#define CLAIM_SET                                                              \
  "UPDATE notifications.deliveries d SET "                                     \
  "lease_until = now() + $3::bigint " MS ", updated_at = now() "
#define CLAIM_WHERE                                                            \
  "AND d.status = 'pending' "                                                  \
  "AND d.next_attempt_at <= now() + $4::bigint " MS " "                        \
  "AND (d.lease_until IS NULL OR d.lease_until < now()) "                      \
  "AND (d.kind <> 'webhook' OR EXISTS (SELECT 1 FROM "                         \
  "notifications.endpoints e WHERE " ENDPOINT_OF_D ")) "
#define CLAIM_RETURNING                                                        \
  "RETURNING d.id::text AS id, d.kind, d.event_id::text AS event_id, "         \
  "d.body, d.attempts, COALESCE(d.address, '') AS address, "                   \
  "COALESCE(d.subject, '') AS subject, "                                       \
  "(SELECT e.url FROM notifications.endpoints e WHERE " ENDPOINT_OF_D          \
  ") AS url, (SELECT e.secret_box FROM notifications.endpoints e "             \
  "WHERE " ENDPOINT_OF_D ") AS secret_box, (SELECT CASE WHEN "                 \
  "e.prev_secret_until > now() THEN e.prev_secret_box END FROM "               \
  "notifications.endpoints e WHERE " ENDPOINT_OF_D ") AS prev_box, "           \
  "floor(extract(epoch FROM d.created_at) * 1000)::bigint AS created_ms"

/* Row `row` of a claim's RETURNING into o. */
static int attempt_of(const db_result *r, int row, store_attempt *o) {
  char kind[16];
  store_copy_col(r, row, "kind", kind, sizeof kind);
  o->kind = kind_of(kind);
  store_copy_col(r, row, "address", o->address, sizeof o->address);
  store_copy_col(r, row, "subject", o->subject, sizeof o->subject);
  store_copy_col(r, row, "event_id", o->event_id, sizeof o->event_id);
  store_copy_col(r, row, "url", o->url, sizeof o->url);
  const char *body = db_get(r, row, db_col(r, "body"));
  o->body = strdup(body != NULL ? body : "");
  int64_t att = 0;
  int rc = o->body == NULL ? ERR_NOMEM : ERR_OK;
  if (rc == ERR_OK) rc = db_get_int64(r, row, db_col(r, "attempts"), &att);
  if (rc == ERR_OK)
    rc = db_get_int64(r, row, db_col(r, "created_ms"), &o->created_ms);
  o->attempts = (int)att;
  if (rc == ERR_OK && o->kind == STORE_KIND_WEBHOOK) rc = read_keys(r, row, o);
  return rc;
}

static int claim_fn(db_conn *c, void *ud) {
  claim_args *a = ud;
  store_attempt_clear(a->out);
  *a->res = STORE_CLAIM_SPENT;
  db_param ps[] = {db_text(a->job->tid), db_text(a->job->id),
                   db_int64(a->lease_ms), db_int64(a->slack_ms)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      CLAIM_SET "WHERE d.tenant_id = $1::uuid AND d.id = $2::uuid " CLAIM_WHERE
          CLAIM_RETURNING,
      ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK || db_nrows(r) != 1) {
    db_result_free(r);
    return rc == ERR_OK ? unclaimed(c, a) : rc;
  }
  rc = attempt_of(r, 0, a->out);
  db_result_free(r);
  if (rc == ERR_OK) *a->res = STORE_CLAIMED;
  return rc;
}

int store_claim(store *st, const store_job *job, int64_t lease_ms,
                int64_t slack_ms, int *res, store_attempt *out) {
  memset(out, 0, sizeof *out);
  claim_args a = {.job = job,
                  .lease_ms = lease_ms,
                  .slack_ms = slack_ms,
                  .res = res,
                  .out = out};
  int rc = store_run(st, job->tid, false, claim_fn, &a);
  if (rc != ERR_OK || *res != STORE_CLAIMED) store_attempt_clear(out);
  if (rc != ERR_OK) *res = STORE_CLAIM_SPENT;
  return rc;
}

typedef struct claim_batch_args {
  const store_job *jobs;
  size_t n;
  int64_t lease_ms, slack_ms;
  int *res;
  store_attempt *out;
  bool *done; /* jobs[i] handled with its tenant's group */
} claim_batch_args;

/* "{id,...}" of the jobs of tenant tid (canonical UUIDs: nothing to
 * quote), marking them done. */
static int ids_of(claim_batch_args *a, const char *tid, char *buf, size_t cap) {
  size_t used = 0;
  buf[used++] = '{';
  for (size_t i = 0; i < a->n; i++) {
    if (a->done[i] || strcmp(a->jobs[i].tid, tid) != 0) continue;
    a->done[i] = true;
    if (used + UUID_STR_LEN + 3 > cap) return ERR_TOOBIG;
    if (used > 1) buf[used++] = ',';
    memcpy(buf + used, a->jobs[i].id, UUID_STR_LEN);
    used += UUID_STR_LEN;
  }
  buf[used++] = '}';
  buf[used] = '\0';
  return ERR_OK;
}

/* The index of the first job of tid with id id whose result is res. */
static size_t job_index(const claim_batch_args *a, const char *tid,
                        const char *id, int res) {
  for (size_t i = 0; i < a->n; i++)
    if (a->res[i] == res && strcmp(a->jobs[i].tid, tid) == 0 && id != NULL &&
        strcmp(a->jobs[i].id, id) == 0)
      return i;
  return a->n;
}

/* Of tid's jobs in ids not claimed: those another worker's lease holds. */
static int mark_leased(db_conn *c, claim_batch_args *a, const char *tid,
                       const char *ids) {
  db_param ps[] = {db_text(tid), db_text(ids)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT id::text AS id FROM notifications.deliveries "
                   "WHERE tenant_id = $1::uuid AND id = ANY($2::uuid[]) "
                   "AND status = 'pending' AND lease_until >= now()",
                   ps, DB_NPARAMS(ps), &r);
  for (int row = 0; rc == ERR_OK && row < db_nrows(r); row++) {
    const char *id = db_get(r, row, db_col(r, "id"));
    size_t i;
    while ((i = job_index(a, tid, id, STORE_CLAIM_SPENT)) < a->n)
      a->res[i] = STORE_CLAIM_LEASED;
  }
  db_result_free(r);
  return rc;
}

/* Claims every job of tenant jobs[first].tid in one statement. */
static int claim_tenant(db_conn *c, claim_batch_args *a, size_t first) {
  const char *tid = a->jobs[first].tid;
  char ids[STORE_CLAIM_BATCH_MAX * (UUID_STR_LEN + 1) + 3];
  int rc = ids_of(a, tid, ids, sizeof ids);
  if (rc == ERR_OK) rc = store_set_tenant(c, tid);
  db_param ps[] = {db_text(tid), db_text(ids), db_int64(a->lease_ms),
                   db_int64(a->slack_ms)};
  db_result *r = NULL;
  if (rc == ERR_OK)
    rc = db_exec(c,
                 CLAIM_SET "WHERE d.tenant_id = $1::uuid AND d.id = "
                           "ANY($2::uuid[]) " CLAIM_WHERE CLAIM_RETURNING,
                 ps, DB_NPARAMS(ps), &r);
  int claimed = 0;
  for (int row = 0; rc == ERR_OK && row < db_nrows(r); row++) {
    size_t i =
        job_index(a, tid, db_get(r, row, db_col(r, "id")), STORE_CLAIM_SPENT);
    if (i == a->n) continue;
    rc = attempt_of(r, row, &a->out[i]);
    if (rc == ERR_OK) a->res[i] = STORE_CLAIMED;
    claimed++;
  }
  size_t mine = 0;
  for (size_t i = 0; i < a->n; i++) mine += strcmp(a->jobs[i].tid, tid) == 0;
  db_result_free(r);
  if (rc == ERR_OK && (size_t)claimed < mine) rc = mark_leased(c, a, tid, ids);
  return rc;
}

static int claim_batch_fn(db_conn *c, void *ud) {
  claim_batch_args *a = ud;
  for (size_t i = 0; i < a->n; i++) { /* a retried transaction starts over */
    store_attempt_clear(&a->out[i]);
    a->res[i] = STORE_CLAIM_SPENT;
    a->done[i] = false;
  }
  int rc = ERR_OK;
  for (size_t i = 0; rc == ERR_OK && i < a->n; i++)
    if (!a->done[i]) rc = claim_tenant(c, a, i);
  return rc;
}

int store_claim_batch(store *st, const store_job *jobs, size_t n,
                      int64_t lease_ms, int64_t slack_ms, int *res,
                      store_attempt *out) {
  bool done[STORE_CLAIM_BATCH_MAX];
  if (n > STORE_CLAIM_BATCH_MAX) return ERR_INVAL;
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    res[i] = STORE_CLAIM_SPENT;
  }
  claim_batch_args a = {.jobs = jobs,
                        .n = n,
                        .lease_ms = lease_ms,
                        .slack_ms = slack_ms,
                        .res = res,
                        .out = out,
                        .done = done};
  int rc = n > 0 ? store_run(st, NULL, false, claim_batch_fn, &a) : ERR_OK;
  for (size_t i = 0; i < n; i++) {
    if (rc != ERR_OK) res[i] = STORE_CLAIM_SPENT;
    if (res[i] != STORE_CLAIMED) store_attempt_clear(&out[i]);
  }
  return rc;
}

typedef struct record_args {
  const store_job *job;
  const store_outcome *o;
  int *status;
} record_args;

static int record_fn(db_conn *c, void *ud) {
  record_args *a = ud;
  const store_outcome *o = a->o;
  char err[STORE_ERROR_MAX + 1], attempt_id[UUID_STR_LEN + 1];
  str_copy(err, o->error != NULL ? o->error : "", sizeof err);
  uuid_v7_str(attempt_id);
  int64_t took = o->duration_ms < 0 ? 0 : o->duration_ms;
  if (took > INT32_MAX) took = INT32_MAX;
  db_param ps[] = {db_text(a->job->tid),     db_text(a->job->id),
                   db_int64(o->status_code), db_text(err[0] ? err : NULL),
                   db_bool(o->ok),           db_int64(o->max_attempts),
                   db_int64(o->retry_in_ms), db_text(attempt_id),
                   db_int64(o->started_ms),  db_int64(took)};
  db_result *r = NULL;
  /* The history row rides in the same statement (no second round trip
   * on the workers' path), written only when the delivery's row was. */
  int rc = db_exec(
      c,
      "WITH d AS (UPDATE notifications.deliveries SET attempts = attempts + 1, "
      "last_status_code = NULLIF($3::integer, 0), last_error = $4, "
      "status = CASE WHEN $5::boolean THEN 'succeeded' "
      "WHEN attempts + 1 >= $6::integer THEN 'dead' ELSE 'pending' END, "
      "next_attempt_at = CASE WHEN $5::boolean OR attempts + 1 >= $6::integer "
      "THEN NULL ELSE now() + $7::bigint " MS " END, "
      "lease_until = NULL, updated_at = now() "
      "WHERE tenant_id = $1::uuid AND id = $2::uuid AND status = 'pending' "
      "RETURNING tenant_id, id, status, attempts), "
      "h AS (INSERT INTO notifications.delivery_attempts (tenant_id, "
      "delivery_id, id, number, started_at, status_code, error, duration_ms) "
      "SELECT d.tenant_id, d.id, $8::uuid, d.attempts, "
      "timestamptz 'epoch' + $9::bigint " MS ", NULLIF($3::integer, 0), $4, "
      "$10::integer FROM d) "
      "SELECT status FROM d",
      ps, DB_NPARAMS(ps), &r);
  char status[16] = "";
  if (rc == ERR_OK && db_nrows(r) == 1)
    store_copy_col(r, 0, "status", status, sizeof status);
  else if (rc == ERR_OK)
    rc = ERR_NOTFOUND;
  *a->status = status_of(status);
  db_result_free(r);
  return rc;
}

int store_record(store *st, const store_job *job, const store_outcome *o,
                 int *status) {
  record_args a = {.job = job, .o = o, .status = status};
  return store_run(st, job->tid, false, record_fn, &a);
}

/* ------------------------------------------------------------ sweep --- */

int store_run_sweep(store *st, int (*fn)(db_conn *c, void *ud), void *ud) {
  return db_store_run(st, NULL, "app.notifications_sweep", true, fn, ud);
}

typedef struct due_args {
  const char *sql; /* SELECT tid, id ... */
  const db_param *ps;
  int nps;
  store_job *jobs;
  size_t njobs;
} due_args;

static int due_fn(db_conn *c, void *ud) {
  due_args *a = ud;
  free(a->jobs);
  a->jobs = NULL;
  a->njobs = 0;
  db_result *r = NULL;
  int rc = db_exec(c, a->sql, a->ps, a->nps, &r);
  int n = rc == ERR_OK ? db_nrows(r) : 0;
  if (n > 0 && (a->jobs = calloc((size_t)n, sizeof *a->jobs)) == NULL)
    rc = ERR_NOMEM;
  for (int i = 0; rc == ERR_OK && i < n; i++, a->njobs++) {
    store_copy_col(r, i, "tid", a->jobs[i].tid, sizeof a->jobs[i].tid);
    store_copy_col(r, i, "id", a->jobs[i].id, sizeof a->jobs[i].id);
  }
  db_result_free(r);
  return rc;
}

int store_due_jobs(store *st, const char *sql, const db_param *ps, int nps,
                   store_job **jobs, size_t *njobs) {
  due_args a = {.sql = sql, .ps = ps, .nps = nps};
  int rc = store_run_sweep(st, due_fn, &a);
  if (rc != ERR_OK) {
    free(a.jobs);
    a.jobs = NULL;
    a.njobs = 0;
  }
  *jobs = a.jobs;
  *njobs = a.njobs;
  return rc;
}

int store_due(store *st, int64_t grace_ms, size_t max, store_job **jobs,
              size_t *njobs) {
  db_param ps[] = {db_int64(grace_ms), db_int64((int64_t)max)};
  return store_due_jobs(
      st,
      "SELECT tenant_id::text AS tid, id::text AS id "
      "FROM notifications.deliveries WHERE status = 'pending' "
      "AND next_attempt_at < now() - $1::bigint " MS " "
      "AND (lease_until IS NULL OR lease_until < now()) "
      "ORDER BY next_attempt_at LIMIT $2",
      ps, DB_NPARAMS(ps), jobs, njobs);
}

static int pending_fn(db_conn *c, void *ud) {
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT count(*) AS n FROM notifications.deliveries "
                   "WHERE status = 'pending'",
                   NULL, 0, &r);
  if (rc == ERR_OK) rc = db_get_int64(r, 0, db_col(r, "n"), ud);
  db_result_free(r);
  return rc;
}

int store_pending_count(store *st, int64_t *n) {
  *n = 0;
  return store_run_sweep(st, pending_fn, n);
}
