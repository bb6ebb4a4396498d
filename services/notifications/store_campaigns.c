/*
 * store_campaigns.c - campaigns' statements (see store_campaigns.h). Same
 * shape as store.c: an argument struct and a static function per
 * transaction, constant SQL with $n parameters, columns read by name.
 * Channel and role lists travel as one "{a,b}" text[] parameter: they are
 * checked against fixed lists of identifiers before they get here.
 */
#include "services/notifications/store_campaigns.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "services/notifications/store_internal.h"

#define MS "* interval '1 millisecond'"
/* Times leave as Unix milliseconds; delivered and failed are counted
 * from the campaign's messages (its id is their event id). */
#define CAMPAIGN_COLS                                                          \
  "c.id::text AS id, c.name, c.title, c.body, "                                \
  "array_to_string(c.channels, ',') AS channels, "                             \
  "array_to_string(c.roles, ',') AS roles, c.status, "                         \
  "COALESCE(c.cursor::text, '') AS cursor, c.targeted, "                       \
  "floor(extract(epoch FROM c.scheduled_at) * 1000)::bigint AS scheduled_ms, " \
  "floor(extract(epoch FROM c.sent_at) * 1000)::bigint AS sent_ms, "           \
  "floor(extract(epoch FROM c.created_at) * 1000)::bigint AS created_ms, "     \
  "floor(extract(epoch FROM c.updated_at) * 1000)::bigint AS updated_ms, "     \
  "(SELECT count(*) FROM notifications.inbox i WHERE i.tenant_id = "           \
  "c.tenant_id AND i.event_id = c.id) + (SELECT count(*) FROM "                \
  "notifications.deliveries d WHERE d.tenant_id = c.tenant_id AND "            \
  "d.event_id = c.id AND d.kind <> 'webhook' AND d.status = 'succeeded') "     \
  "AS delivered, (SELECT count(*) FROM notifications.deliveries d WHERE "      \
  "d.tenant_id = c.tenant_id AND d.event_id = c.id AND d.kind <> 'webhook' "   \
  "AND d.status = 'dead') AS failed"

void store_campaigns_free(store_campaigns *l) {
  if (l == NULL) return;
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* "a,b" into up to max entries of width w. */
static size_t split(const char *s, char *out, size_t w, size_t max) {
  size_t n = 0;
  while (s != NULL && *s != '\0' && n < max) {
    const char *comma = strchr(s, ',');
    size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
    if (len >= w) len = w - 1;
    memcpy(out + n * w, s, len);
    out[n++ * w + len] = '\0';
    s = comma != NULL ? comma + 1 : NULL;
  }
  return n;
}

static int read_campaign(const db_result *r, int row, store_campaign *c) {
  memset(c, 0, sizeof *c);
  char channels[64], roles[64];
  store_copy_col(r, row, "id", c->id, sizeof c->id);
  store_copy_col(r, row, "name", c->name, sizeof c->name);
  store_copy_col(r, row, "title", c->title, sizeof c->title);
  store_copy_col(r, row, "body", c->body, sizeof c->body);
  store_copy_col(r, row, "status", c->status, sizeof c->status);
  store_copy_col(r, row, "cursor", c->cursor, sizeof c->cursor);
  store_copy_col(r, row, "channels", channels, sizeof channels);
  store_copy_col(r, row, "roles", roles, sizeof roles);
  c->nchannels = split(channels, &c->channels[0][0], sizeof c->channels[0],
                       CAMPAIGN_CHANNELS_MAX);
  c->nroles =
      split(roles, &c->roles[0][0], sizeof c->roles[0], CAMPAIGN_ROLES_MAX);
  int rc = db_get_int64(r, row, db_col(r, "targeted"), &c->targeted);
  if (rc == ERR_OK)
    rc = db_get_int64(r, row, db_col(r, "delivered"), &c->delivered);
  if (rc == ERR_OK) rc = db_get_int64(r, row, db_col(r, "failed"), &c->failed);
  if (rc == ERR_OK)
    rc = store_time_col(r, row, "scheduled_ms", c->scheduled_at);
  if (rc == ERR_OK) rc = store_time_col(r, row, "sent_ms", c->sent_at);
  if (rc == ERR_OK) rc = store_time_col(r, row, "created_ms", c->created_at);
  if (rc == ERR_OK) rc = store_time_col(r, row, "updated_ms", c->updated_at);
  return rc;
}

/* The campaign id of tid into out (ERR_NOTFOUND when none). */
static int select_one(db_conn *c, const char *tid, const char *id,
                      store_campaign *out) {
  db_param ps[] = {db_text(tid), db_text(id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " CAMPAIGN_COLS " FROM notifications.campaigns c "
                   "WHERE c.tenant_id = $1::uuid AND c.id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) rc = read_campaign(r, 0, out);
  db_result_free(r);
  return rc;
}

/* Literals of in's lists ("" when not given). */
static int lists(const store_campaign_in *in, char ch[64], char ro[64]) {
  ch[0] = ro[0] = '\0';
  int rc = ERR_OK;
  if (in->nchannels > 0)
    rc = store_events_literal(in->channels, in->nchannels, ch, 64);
  if (rc == ERR_OK && in->nroles > 0)
    rc = store_events_literal(in->roles, in->nroles, ro, 64);
  return rc;
}

/* ------------------------------------------------------------ create --- */

typedef struct write_args {
  const char *tid, *id;
  const store_campaign_in *in;
  store_campaign *out;
  idem_once *key;   /* create: the Idempotency-Key, or NULL */
  bool wrong_state; /* the campaign's status refuses the change */
} write_args;

static int create_fn(db_conn *c, void *ud) {
  write_args *a = ud;
  char ch[64], ro[64], id[UUID_STR_LEN + 1];
  int rc = idem_once_begin(c, a->key);
  if (rc != ERR_OK || !idem_once_fresh(a->key)) return rc;
  rc = lists(a->in, ch, ro);
  if (rc != ERR_OK) return rc;
  int64_t id_ms = uuid_v7_str(id);
  db_param ps[] = {db_text(a->tid),      db_text(id),
                   db_text(a->in->name), db_text(a->in->title),
                   db_text(a->in->body), db_text(ch),
                   db_text(ro),          db_int64(a->in->scheduled_ms),
                   db_int64(id_ms)};
  rc = db_exec(c,
               "INSERT INTO notifications.campaigns (tenant_id, id, name, "
               "title, body, channels, roles, status, scheduled_at, "
               "created_at, updated_at) VALUES ($1::uuid, $2::uuid, $3, $4, "
               "$5, $6::text[], $7::text[], CASE WHEN $8::bigint > 0 THEN "
               "'scheduled' ELSE 'draft' END, CASE WHEN $8::bigint > 0 THEN "
               "timestamptz 'epoch' + $8::bigint " MS " END, "
               "timestamptz 'epoch' + $9::bigint " MS ", now())",
               ps, DB_NPARAMS(ps), NULL);
  if (rc == ERR_OK) rc = select_one(c, a->tid, id, a->out);
  return rc == ERR_OK ? idem_once_save(c, a->key, a->out) : rc;
}

int store_create_campaign(store *st, const char *tid,
                          const store_campaign_in *in, idem_once *key,
                          store_campaign *out) {
  write_args a = {.tid = tid, .in = in, .out = out, .key = key};
  return store_run(st, tid, false, create_fn, &a);
}

/* -------------------------------------------------------------- read --- */

typedef struct list_args {
  const char *tid, *before;
  size_t limit;
  store_campaigns *out;
  bool *more;
} list_args;

static int list_fn(db_conn *c, void *ud) {
  list_args *a = ud;
  store_campaigns_free(a->out);
  *a->more = false;
  db_param ps[] = {db_text(a->tid), db_text(a->before),
                   db_int64((int64_t)a->limit + 1)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " CAMPAIGN_COLS " FROM notifications.campaigns c "
                   "WHERE c.tenant_id = $1::uuid "
                   "AND ($2::uuid IS NULL OR c.id < $2::uuid) "
                   "ORDER BY c.id DESC LIMIT $3",
                   ps, DB_NPARAMS(ps), &r);
  size_t n = rc == ERR_OK ? db_page_rows(r, a->limit, a->more) : 0;
  if (n > 0 && (a->out->v = calloc(n, sizeof *a->out->v)) == NULL)
    rc = ERR_NOMEM;
  for (size_t i = 0; rc == ERR_OK && i < n; i++, a->out->n++)
    rc = read_campaign(r, (int)i, &a->out->v[i]);
  db_result_free(r);
  return rc;
}

int store_list_campaigns(store *st, const char *tid, const char *before_id,
                         size_t limit, store_campaigns *out, bool *more) {
  memset(out, 0, sizeof *out);
  list_args a = {.tid = tid,
                 .before = before_id,
                 .limit = limit,
                 .out = out,
                 .more = more};
  int rc = store_run(st, tid, true, list_fn, &a);
  if (rc != ERR_OK) store_campaigns_free(out);
  return rc;
}

static int get_fn(db_conn *c, void *ud) {
  write_args *a = ud;
  return select_one(c, a->tid, a->id, a->out);
}

int store_get_campaign(store *st, const char *tid, const char *id,
                       store_campaign *out) {
  write_args a = {.tid = tid, .id = id, .out = out};
  return store_run(st, tid, true, get_fn, &a);
}

/* ------------------------------------------------------------ change --- */

/* The campaign's status, locked (ERR_NOTFOUND when none). */
static int lock_status(db_conn *c, const char *tid, const char *id,
                       char status[12]) {
  db_param ps[] = {db_text(tid), db_text(id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT status FROM notifications.campaigns "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid FOR UPDATE",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) store_copy_col(r, 0, "status", status, 12);
  db_result_free(r);
  return rc;
}

static bool editable(const char *status) {
  return strcmp(status, "draft") == 0 || strcmp(status, "scheduled") == 0;
}

static int update_fn(db_conn *c, void *ud) {
  write_args *a = ud;
  char status[12], ch[64], ro[64];
  a->wrong_state = false;
  int rc = lock_status(c, a->tid, a->id, status);
  if (rc != ERR_OK || (a->wrong_state = !editable(status))) return rc;
  rc = lists(a->in, ch, ro);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_text(a->tid),
                   db_text(a->id),
                   db_text(a->in->name),
                   db_text(a->in->title),
                   db_text(a->in->body),
                   db_text(ch[0] ? ch : NULL),
                   db_text(ro[0] ? ro : NULL),
                   db_int64(a->in->scheduled_ms)};
  rc = db_exec(c,
               "UPDATE notifications.campaigns SET "
               "name = COALESCE($3, name), title = COALESCE($4, title), "
               "body = COALESCE($5, body), "
               "channels = COALESCE($6::text[], channels), "
               "roles = COALESCE($7::text[], roles), "
               "status = CASE WHEN $8::bigint > 0 THEN 'scheduled' "
               "ELSE status END, scheduled_at = CASE WHEN $8::bigint > 0 "
               "THEN timestamptz 'epoch' + $8::bigint " MS
               " ELSE scheduled_at END, updated_at = now() "
               "WHERE tenant_id = $1::uuid AND id = $2::uuid",
               ps, DB_NPARAMS(ps), NULL);
  return rc == ERR_OK ? select_one(c, a->tid, a->id, a->out) : rc;
}

int store_update_campaign(store *st, const char *tid, const char *id,
                          const store_campaign_in *in, store_campaign *out) {
  write_args a = {.tid = tid, .id = id, .in = in, .out = out};
  int rc = store_run(st, tid, false, update_fn, &a);
  return rc == ERR_OK && a.wrong_state ? ERR_CONFLICT : rc;
}

static int delete_fn(db_conn *c, void *ud) {
  write_args *a = ud;
  char status[12];
  a->wrong_state = false;
  int rc = lock_status(c, a->tid, a->id, status);
  if (rc != ERR_OK || (a->wrong_state = strcmp(status, "sending") == 0))
    return rc;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  if (strcmp(status, "scheduled") == 0)
    return db_exec(c,
                   "UPDATE notifications.campaigns SET status = 'cancelled', "
                   "updated_at = now() "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), NULL);
  return db_exec(c,
                 "DELETE FROM notifications.campaigns "
                 "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                 ps, DB_NPARAMS(ps), NULL);
}

int store_delete_campaign(store *st, const char *tid, const char *id) {
  write_args a = {.tid = tid, .id = id};
  int rc = store_run(st, tid, false, delete_fn, &a);
  return rc == ERR_OK && a.wrong_state ? ERR_CONFLICT : rc;
}

static int send_fn(db_conn *c, void *ud) {
  write_args *a = ud;
  char status[12];
  a->wrong_state = false;
  int rc = lock_status(c, a->tid, a->id, status);
  if (rc != ERR_OK || (a->wrong_state = !editable(status))) return rc;
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  return db_exec(c,
                 "UPDATE notifications.campaigns SET status = 'sending', "
                 "lease_until = NULL, updated_at = now() "
                 "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                 ps, DB_NPARAMS(ps), NULL);
}

int store_send_campaign(store *st, const char *tid, const char *id) {
  write_args a = {.tid = tid, .id = id};
  int rc = store_run(st, tid, false, send_fn, &a);
  return rc == ERR_OK && a.wrong_state ? ERR_CONFLICT : rc;
}

/* ------------------------------------------------------------ runner --- */

int store_due_campaigns(store *st, size_t max, store_job **jobs,
                        size_t *njobs) {
  db_param ps[] = {db_int64((int64_t)max)};
  return store_due_jobs(
      st,
      "SELECT tenant_id::text AS tid, id::text AS id "
      "FROM notifications.campaigns WHERE (status = 'sending' "
      "OR (status = 'scheduled' AND scheduled_at <= now())) "
      "AND (lease_until IS NULL OR lease_until < now()) "
      "ORDER BY updated_at LIMIT $1",
      ps, DB_NPARAMS(ps), jobs, njobs);
}

typedef struct claim_args {
  const store_job *job;
  int64_t lease_ms;
  store_campaign *out;
  bool *claimed;
} claim_args;

static int claim_fn(db_conn *c, void *ud) {
  claim_args *a = ud;
  *a->claimed = false;
  db_param ps[] = {db_text(a->job->tid), db_text(a->job->id),
                   db_int64(a->lease_ms)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE notifications.campaigns SET status = 'sending', "
                   "lease_until = now() + $3::bigint " MS ", "
                   "updated_at = now() "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid "
                   "AND (status = 'sending' OR (status = 'scheduled' "
                   "AND scheduled_at <= now())) "
                   "AND (lease_until IS NULL OR lease_until < now())",
                   ps, DB_NPARAMS(ps), &r);
  bool got = rc == ERR_OK && db_affected(r) == 1;
  db_result_free(r);
  if (rc != ERR_OK || !got) return rc;
  rc = select_one(c, a->job->tid, a->job->id, a->out);
  *a->claimed = rc == ERR_OK;
  return rc;
}

int store_claim_campaign(store *st, const store_job *job, int64_t lease_ms,
                         store_campaign *out, bool *claimed) {
  claim_args a = {
      .job = job, .lease_ms = lease_ms, .out = out, .claimed = claimed};
  return store_run(st, job->tid, false, claim_fn, &a);
}

typedef struct batch_args {
  const char *tid;
  const store_campaign *c;
  const store_inbox_new *inbox;
  size_t ninbox;
  const store_message *msgs;
  size_t nmsgs;
  const char *next;
  int64_t targeted;
  bool done;
  int64_t pause_ms;
  store_job *jobs;
  size_t njobs;
  bool moved; /* another runner moved the campaign: nothing written */
} batch_args;

static int batch_fn(db_conn *c, void *ud) {
  batch_args *a = ud;
  free(a->jobs);
  a->jobs = NULL;
  a->njobs = 0;
  a->moved = false;
  db_param ps[] = {db_text(a->tid),
                   db_text(a->c->id),
                   db_text(a->c->cursor[0] ? a->c->cursor : NULL),
                   db_text(a->next[0] ? a->next : NULL),
                   db_int64(a->targeted),
                   db_bool(a->done),
                   db_int64(a->pause_ms)};
  db_result *r = NULL;
  int rc =
      db_exec(c,
              "UPDATE notifications.campaigns SET cursor = $4::uuid, "
              "targeted = targeted + $5, batches = batches + 1, "
              "status = CASE WHEN $6 THEN 'sent' ELSE status END, "
              "sent_at = CASE WHEN $6 THEN now() ELSE sent_at END, "
              "lease_until = CASE WHEN $6 THEN NULL "
              "ELSE now() + $7::bigint " MS " END, "
              "updated_at = now() WHERE tenant_id = $1::uuid AND id = $2::uuid "
              "AND status = 'sending' AND cursor IS NOT DISTINCT FROM $3::uuid",
              ps, DB_NPARAMS(ps), &r);
  a->moved = rc == ERR_OK && db_affected(r) != 1;
  db_result_free(r);
  if (rc != ERR_OK || a->moved) return rc;
  size_t added = 0;
  if (a->ninbox > 0)
    rc = store_inbox_add(c, a->tid, a->c->id, a->inbox, a->ninbox, &added);
  if (rc == ERR_OK && a->nmsgs > 0)
    rc = store_add_messages(c, a->tid, a->c->id, "campaign", a->msgs, a->nmsgs,
                            &a->jobs, &a->njobs);
  return rc;
}

int store_campaign_batch(store *st, const char *tid, const store_campaign *c,
                         const store_inbox_new *inbox, size_t ninbox,
                         const store_message *msgs, size_t nmsgs,
                         const char *next_cursor, int64_t targeted, bool done,
                         int64_t pause_ms, store_job **jobs, size_t *njobs) {
  batch_args a = {.tid = tid,
                  .c = c,
                  .inbox = inbox,
                  .ninbox = ninbox,
                  .msgs = msgs,
                  .nmsgs = nmsgs,
                  .next = next_cursor,
                  .targeted = targeted,
                  .done = done,
                  .pause_ms = pause_ms};
  int rc = store_run(st, tid, false, batch_fn, &a);
  if (rc != ERR_OK) {
    free(a.jobs);
    a.jobs = NULL;
    a.njobs = 0;
  }
  *jobs = a.jobs;
  *njobs = a.njobs;
  return rc == ERR_OK && a.moved ? ERR_CONFLICT : rc;
}
