/*
 * outbox_itest.c - libs/outbox against a real PostgreSQL (and, for
 * Replay and the bus, real nng sockets).
 *
 * main() starts one server; each test makes its own schema with the
 * table outbox.h describes, so tests never see each other's rows. Publish
 * functions here record what they are handed (and can fail on demand),
 * which is how the tests see order, duplicates and losses: the relay's
 * promise is about the sequence of publish calls.
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/bus/bus.h"
#include "libs/db/db.h"
#include "libs/obs/metrics.h"
#include "libs/outbox/outbox.h"
#include "libs/rpc/rpc.h"
#include "proto/rpc/v1/rpc.pb-c.h"
#include "tests/harness/harness.h"

static harness_pg g_pg;

#define TENANT_A "0190f0a2-1c4b-7cde-8f00-00000000000a"
#define TENANT_B "0190f0a2-1c4b-7cde-8f00-00000000000b"

#define OK(expr)                                                               \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    ck_assert_msg(rc_ == ERR_OK, "%s: %s [%s] %s", #expr, err_str(rc_),        \
                  db_last_error()->sqlstate, db_last_error()->message);        \
  } while (0)

/* -------------------------------------------------------- database --- */

static db_pool *pool_as(const char *user, int max) {
  char conninfo[600];
  if (user != NULL)
    snprintf(conninfo, sizeof conninfo, "%s user=%s", g_pg.url, user);
  else
    snprintf(conninfo, sizeof conninfo, "%s", g_pg.url);
  db_config cfg = {.conninfo = conninfo,
                   .max_conns = max,
                   .acquire_timeout_ms = 10000,
                   .application_name = "outbox_itest"};
  db_pool *p = NULL;
  OK(db_pool_new(&cfg, &p));
  return p;
}

static db_pool *pool(int max) { return pool_as(NULL, max); }

/* Runs the ';'-separated statements of stmt (no ';' inside literals):
 * db_exec sends one statement at a time. */
static void sql(db_pool *p, const char *stmt) {
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", stmt);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  char *save = NULL;
  for (char *one = strtok_r(buf, ";", &save); one != NULL;
       one = strtok_r(NULL, ";", &save))
    if (strspn(one, " \n") != strlen(one)) OK(db_exec(c, one, NULL, 0, NULL));
  db_release(c);
}

static void sqlf(db_pool *p, const char *fmt, const char *schema) {
  char buf[2048];
  snprintf(buf, sizeof buf, fmt, schema, schema, schema, schema);
  sql(p, buf);
}

static int64_t count(db_pool *p, const char *fmt, const char *schema) {
  char buf[1024];
  snprintf(buf, sizeof buf, fmt, schema);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  db_result *r = NULL;
  OK(db_exec(c, buf, NULL, 0, &r));
  int64_t v = -1;
  OK(db_get_int64(r, 0, 0, &v));
  db_result_free(r);
  db_release(c);
  return v;
}

/* The table of outbox.h in schema s; with rls, the tenant policy of
 * every service plus the relay's own, forced, and owned by role owner. */
static void make_schema(db_pool *p, const char *s, bool rls,
                        const char *owner) {
  sqlf(p,
       "CREATE SCHEMA %s;"
       "CREATE TABLE %s.outbox ("
       " id bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE,"
       " topic text NOT NULL, type text NOT NULL, tenant_id uuid,"
       " payload bytea NOT NULL,"
       " created_at timestamptz NOT NULL DEFAULT now(),"
       " seq bigint UNIQUE, published_at timestamptz);"
       "CREATE INDEX ON %s.outbox (id) WHERE seq IS NULL;"
       "CREATE INDEX ON %s.outbox (seq)"
       " WHERE seq IS NOT NULL AND published_at IS NULL;",
       s);
  if (!rls) return;
  sqlf(p,
       "ALTER TABLE %s.outbox ENABLE ROW LEVEL SECURITY;"
       "ALTER TABLE %s.outbox FORCE ROW LEVEL SECURITY;"
       "CREATE POLICY outbox_tenant ON %s.outbox USING (tenant_id ="
       " NULLIF(current_setting('app.tenant_id', true), '')::uuid);"
       "CREATE POLICY outbox_relay ON %s.outbox"
       " USING (current_setting('app.outbox_relay', true) = 'on');",
       s);
  char buf[512];
  snprintf(buf, sizeof buf,
           "ALTER SCHEMA %s OWNER TO %s; ALTER TABLE %s.outbox OWNER TO %s", s,
           owner, s, owner);
  sql(p, buf);
}

/* Appends n events in one transaction (tenant scope when tenant is set);
 * ids (optional) gets their event ids. */
static void append_n(db_pool *p, const char *schema, const char *tenant, int n,
                     int first, char (*ids)[UUID_STR_LEN + 1]) {
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_begin(c, tenant));
  for (int i = 0; i < n; i++) {
    char payload[32], topic[64];
    snprintf(payload, sizeof payload, "payload-%d", first + i);
    snprintf(topic, sizeof topic, "%s.%s", schema, tenant ? tenant : "all");
    char id[UUID_STR_LEN + 1];
    outbox_event ev = {.topic = topic,
                       .type = "ThingHappened",
                       .tenant_id = tenant,
                       .payload = payload,
                       .len = strlen(payload),
                       .event_id_out = id};
    OK(outbox_append(c, schema, &ev));
    ck_assert(uuid_is_valid(id));
    if (ids != NULL) memcpy(ids[i], id, sizeof id);
  }
  OK(db_commit(c));
  db_release(c);
}

static void append_one(db_pool *p, const char *schema, int k,
                       char id[UUID_STR_LEN + 1]) {
  append_n(p, schema, NULL, 1, k, (char(*)[UUID_STR_LEN + 1]) id);
}

/* --------------------------------------------------------- recorder --- */

#define MAX_REC 4096

typedef struct rec_event {
  uint64_t seq;
  char id[UUID_STR_LEN + 1];
  char payload[32];
  char topic[80];
  char type[32];
  char tenant[UUID_STR_LEN + 1];
  char source[32];
  int64_t time_ms;
  int rc; /* what publish answered */
} rec_event;

typedef struct recorder {
  pthread_mutex_t mu;
  rec_event ev[MAX_REC];
  size_t n;
  int fail_at;        /* the call with this index fails (-1: none) */
  bool fail_always;   /* every call from fail_at on fails */
  atomic_int inside;  /* publish calls running now */
  atomic_int overlap; /* times two ran at once */
} recorder;

static void rec_init(recorder *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  r->fail_at = -1;
}

static int rec_publish(void *arg, const Rpc__V1__Event *ev) {
  recorder *r = arg;
  if (atomic_fetch_add(&r->inside, 1) != 0) atomic_fetch_add(&r->overlap, 1);
  pthread_mutex_lock(&r->mu);
  int rc = ERR_OK;
  int idx = (int)r->n;
  if (r->fail_at >= 0 &&
      (idx == r->fail_at || (r->fail_always && idx > r->fail_at)))
    rc = ERR_UNAVAILABLE;
  if (r->n < MAX_REC) {
    rec_event *e = &r->ev[r->n++];
    e->seq = ev->seq;
    snprintf(e->id, sizeof e->id, "%s", ev->id);
    size_t len = ev->payload.len < 31 ? ev->payload.len : 31;
    memcpy(e->payload, ev->payload.data, len);
    e->payload[len] = '\0';
    snprintf(e->topic, sizeof e->topic, "%s", ev->topic);
    snprintf(e->type, sizeof e->type, "%s", ev->type);
    snprintf(e->tenant, sizeof e->tenant, "%s", ev->tenant_id);
    snprintf(e->source, sizeof e->source, "%s", ev->source);
    e->time_ms = ev->time_unix_ms;
    e->rc = rc;
  }
  pthread_mutex_unlock(&r->mu);
  atomic_fetch_sub(&r->inside, 1);
  return rc;
}

static size_t rec_count(recorder *r) {
  pthread_mutex_lock(&r->mu);
  size_t n = r->n;
  pthread_mutex_unlock(&r->mu);
  return n;
}

static outbox *relay_on(db_pool *p, const char *schema, recorder *r,
                        size_t batch) {
  outbox_options o = {.schema = schema,
                      .source = schema,
                      .publish = r ? rec_publish : NULL,
                      .publish_arg = r,
                      .batch = batch,
                      .poll_ms = 60000};
  outbox *ob = NULL;
  OK(outbox_new(p, &o, &ob));
  return ob;
}

/* ------------------------------------------------------------ tests --- */

START_TEST(rolled_back_append_leaves_nothing) {
  db_pool *p = pool(4);
  make_schema(p, "ob_rollback", false, NULL);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  outbox_event ev = {.topic = "t", .type = "T", .payload = "x", .len = 1};
  /* outside a transaction: refused, nothing written */
  ck_assert_int_eq(outbox_append(c, "ob_rollback", &ev), ERR_INVAL);
  OK(db_begin(c, NULL));
  OK(outbox_append(c, "ob_rollback", &ev));
  OK(outbox_append(c, "ob_rollback", &ev));
  ck_assert_int_eq(db_rollback(c), ERR_OK);
  /* a bad event fails before any SQL: the transaction stays usable */
  OK(db_begin(c, NULL));
  outbox_event bad = ev;
  bad.tenant_id = "nope";
  ck_assert_int_eq(outbox_append(c, "ob_rollback", &bad), ERR_INVAL);
  ck_assert_int_eq(outbox_append(c, "no such; schema", &ev), ERR_INVAL);
  OK(db_exec(c, "SELECT 1", NULL, 0, NULL));
  OK(db_commit(c));
  db_release(c);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM %s.outbox", "ob_rollback"),
                   0);

  char id[UUID_STR_LEN + 1];
  append_one(p, "ob_rollback", 1, id);
  recorder r;
  rec_init(&r);
  outbox *ob = relay_on(p, "ob_rollback", &r, 0);
  size_t n = 0;
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_uint_eq(r.ev[0].seq, 1);
  ck_assert_str_eq(r.ev[0].id, id);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(events_are_published_in_seq_order_without_holes) {
  db_pool *p = pool(4);
  const char *s = "ob_order";
  make_schema(p, s, false, NULL);
  char ids[13][UUID_STR_LEN + 1];
  for (int i = 0; i < 5; i++) append_one(p, s, i + 1, ids[i]);
  append_n(p, s, TENANT_A, 3, 6, ids + 5);
  for (int i = 8; i < 13; i++) append_one(p, s, i + 1, ids[i]);

  recorder r;
  rec_init(&r);
  outbox *ob = relay_on(p, s, &r, 4); /* several rounds in one pass */
  size_t n = 0;
  int64_t before = time_now_ms();
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 13);
  ck_assert_uint_eq(r.n, 13);
  for (size_t i = 0; i < 13; i++) {
    rec_event *e = &r.ev[i];
    ck_assert_uint_eq(e->seq, i + 1);
    ck_assert_str_eq(e->id, ids[i]);
    char want[32];
    snprintf(want, sizeof want, "payload-%zu", i + 1);
    ck_assert_str_eq(e->payload, want);
    ck_assert_str_eq(e->source, s);
    ck_assert_str_eq(e->type, "ThingHappened");
    ck_assert_str_eq(e->tenant, i >= 5 && i < 8 ? TENANT_A : "");
    ck_assert_str_eq(e->topic,
                     i >= 5 && i < 8 ? "ob_order." TENANT_A : "ob_order.all");
    ck_assert_int_le(e->time_ms, before + 1);
    ck_assert_int_gt(e->time_ms, before - 60000);
  }
  /* nothing twice */
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(r.n, 13);
  ck_assert_int_eq(count(p,
                         "SELECT count(*) FROM %s.outbox WHERE "
                         "published_at IS NULL",
                         s),
                   0);
  uint64_t last = 0;
  OK(outbox_last_seq(ob, &last));
  ck_assert_uint_eq(last, 13);

  /* later events continue the sequence */
  append_one(p, s, 14, ids[0]);
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(r.ev[13].seq, 14);

  char *m = metrics_render();
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(
      strstr(m, "outbox_published_total{source=\"ob_order\"} 14"));
  ck_assert_ptr_nonnull(strstr(m, "outbox_pending{source=\"ob_order\"} 0"));
  ck_assert_ptr_nonnull(strstr(m, "outbox_last_seq{source=\"ob_order\"} 14"));
  free(m);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(failed_publish_is_retried_next_pass_in_order) {
  db_pool *p = pool(4);
  const char *s = "ob_fail";
  make_schema(p, s, false, NULL);
  char ids[5][UUID_STR_LEN + 1];
  append_n(p, s, NULL, 5, 1, ids);
  recorder r;
  rec_init(&r);
  r.fail_at = 2; /* the third event */
  outbox *ob = relay_on(p, s, &r, 0);
  size_t n = 0;
  ck_assert_int_eq(outbox_relay_once(ob, &n), ERR_UNAVAILABLE);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(r.n, 3);
  ck_assert_uint_eq(r.ev[2].seq, 3);
  /* every row has its seq; only what went out is marked */
  ck_assert_int_eq(count(p,
                         "SELECT count(*) FROM %s.outbox WHERE seq IS "
                         "NULL",
                         s),
                   0);
  ck_assert_int_eq(count(p,
                         "SELECT count(*) FROM %s.outbox WHERE "
                         "published_at IS NOT NULL",
                         s),
                   2);
  ck_assert_int_eq(count(p,
                         "SELECT max(seq) FROM %s.outbox WHERE "
                         "published_at IS NOT NULL",
                         s),
                   2);

  append_one(p, s, 6, ids[0]); /* arrives meanwhile: goes after them */
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 4);
  ck_assert_uint_eq(r.n, 7);
  /* the failed one again: the same id and seq, then the rest in order */
  ck_assert_uint_eq(r.ev[3].seq, 3);
  ck_assert_str_eq(r.ev[3].id, r.ev[2].id);
  ck_assert_str_eq(r.ev[3].id, ids[2]);
  ck_assert_uint_eq(r.ev[4].seq, 4);
  ck_assert_uint_eq(r.ev[5].seq, 5);
  ck_assert_uint_eq(r.ev[6].seq, 6);
  ck_assert_str_eq(r.ev[6].id, ids[0]);
  ck_assert_str_eq(r.ev[6].payload, "payload-6");
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 0);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

/* Two relays (own pools, own threads) on one schema while a writer
 * appends: every event exactly once, in seq order overall. */
typedef struct racer {
  outbox *ob;
  atomic_bool *done;
  size_t published, conflicts, passes;
  int err;
} racer;

static void *race_relay(void *arg) {
  racer *x = arg;
  for (;;) {
    bool finished = atomic_load(x->done);
    size_t n = 0;
    int rc = outbox_relay_once(x->ob, &n);
    x->passes++;
    x->published += n;
    if (rc == ERR_CONFLICT)
      x->conflicts++;
    else if (rc != ERR_OK)
      x->err = rc;
    if (finished && rc == ERR_OK && n == 0) return NULL;
    /* A relay that just published steps back a little longer, so the
     * other one wins the lock too and the two really alternate. */
    time_sleep_ms(n > 0 ? 2 : 1);
  }
}

#define RACE_EVENTS 400

typedef struct writer {
  db_pool *p;
  char ids[RACE_EVENTS][UUID_STR_LEN + 1];
} writer;

static void *race_writer(void *arg) {
  writer *w = arg;
  int k = 0;
  while (k < RACE_EVENTS) {
    int n = (k % 7 == 0 && k + 3 <= RACE_EVENTS) ? 3 : 1;
    append_n(w->p, "ob_race", (k % 2) ? TENANT_A : TENANT_B, n, k + 1,
             w->ids + k);
    k += n;
    time_sleep_ms(1); /* a steady trickle: many short passes */
  }
  return NULL;
}

START_TEST(concurrent_relays_publish_each_event_once_in_order) {
  db_pool *admin = pool(2);
  make_schema(admin, "ob_race", false, NULL);
  db_pool *p1 = pool(3), *p2 = pool(3), *pw = pool(3);
  recorder r;
  rec_init(&r);
  atomic_bool done;
  atomic_init(&done, false);
  racer a = {.ob = relay_on(p1, "ob_race", &r, 7), .done = &done};
  racer b = {.ob = relay_on(p2, "ob_race", &r, 5), .done = &done};
  static writer w;
  w.p = pw;
  pthread_t ta, tb, tw;
  ck_assert_int_eq(pthread_create(&ta, NULL, race_relay, &a), 0);
  ck_assert_int_eq(pthread_create(&tb, NULL, race_relay, &b), 0);
  ck_assert_int_eq(pthread_create(&tw, NULL, race_writer, &w), 0);
  pthread_join(tw, NULL);
  atomic_store(&done, true);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ck_assert_int_eq(a.err, ERR_OK);
  ck_assert_int_eq(b.err, ERR_OK);
  ck_assert_int_eq(atomic_load(&r.overlap), 0); /* never two at once */
  ck_assert_uint_eq(a.published + b.published, RACE_EVENTS);
  ck_assert_uint_gt(a.published, 0); /* both took turns */
  ck_assert_uint_gt(b.published, 0);
  ck_assert_uint_eq(r.n, RACE_EVENTS);
  /* seq 1..N in publication order; each appended id exactly once */
  static bool seen[RACE_EVENTS];
  memset(seen, 0, sizeof seen);
  for (size_t i = 0; i < r.n; i++) {
    ck_assert_uint_eq(r.ev[i].seq, i + 1);
    int k = -1;
    for (int j = 0; j < RACE_EVENTS; j++)
      if (strcmp(w.ids[j], r.ev[i].id) == 0) k = j;
    ck_assert_int_ge(k, 0);
    ck_assert(!seen[k]);
    seen[k] = true;
  }
  ck_assert_int_eq(
      count(admin, "SELECT count(DISTINCT seq) FROM %s.outbox", "ob_race"),
      RACE_EVENTS);
  ck_assert_int_eq(count(admin, "SELECT max(seq) FROM %s.outbox", "ob_race"),
                   RACE_EVENTS);
  fprintf(stderr,
          "race: relay a %zu events / %zu passes / %zu conflicts, "
          "relay b %zu / %zu / %zu\n",
          a.published, a.passes, a.conflicts, b.published, b.passes,
          b.conflicts);
  outbox_free(a.ob);
  outbox_free(b.ob);
  db_pool_free(p1);
  db_pool_free(p2);
  db_pool_free(pw);
  db_pool_free(admin);
}
END_TEST

START_TEST(rows_sequenced_by_a_dead_relay_are_published_by_the_next) {
  db_pool *p = pool(4);
  const char *s = "ob_crash";
  make_schema(p, s, false, NULL);
  char ids[4][UUID_STR_LEN + 1];
  append_n(p, s, NULL, 4, 1, ids);

  /* A relay that sequences, then cannot publish, then is gone. */
  recorder dead;
  rec_init(&dead);
  dead.fail_at = 0;
  dead.fail_always = true;
  outbox *ob = relay_on(p, s, &dead, 0);
  size_t n = 9;
  ck_assert_int_eq(outbox_relay_once(ob, &n), ERR_UNAVAILABLE);
  ck_assert_uint_eq(n, 0);
  outbox_free(ob);
  ck_assert_int_eq(count(p,
                         "SELECT count(*) FROM %s.outbox WHERE seq IS "
                         "NOT NULL AND published_at IS NULL",
                         s),
                   4);

  /* A replica that died holding the lock: its session ends, the lock
   * with it. */
  db_pool *other = pool(1);
  db_conn *held = NULL;
  OK(db_acquire(other, &held));
  db_param k[] = {db_text("outbox:ob_crash")};
  db_result *res = NULL;
  OK(db_exec(held,
             "SELECT pg_advisory_lock(hashtextextended($1, 0)), "
             "pg_backend_pid()",
             k, 1, &res));
  int64_t pid = 0;
  OK(db_get_int64(res, 0, 1, &pid));
  db_result_free(res);

  recorder r;
  rec_init(&r);
  ob = relay_on(p, s, &r, 0);
  ck_assert_int_eq(outbox_relay_once(ob, &n), ERR_CONFLICT);
  ck_assert_uint_eq(r.n, 0);
  char id5[UUID_STR_LEN + 1];
  append_one(p, s, 5, id5);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  db_param kp[] = {db_int64(pid)};
  OK(db_exec(c, "SELECT pg_terminate_backend($1::int, 5000)", kp, 1, NULL));
  db_release(c);

  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 5);
  for (size_t i = 0; i < 5; i++) ck_assert_uint_eq(r.ev[i].seq, i + 1);
  for (size_t i = 0; i < 4; i++) /* the ids the dead relay had numbered */
    ck_assert_str_eq(r.ev[i].id, ids[i]);
  ck_assert_str_eq(r.ev[4].id, id5);
  db_release(held); /* broken: discarded */
  db_pool_free(other);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(relay_sees_every_tenant_under_forced_rls) {
  db_pool *admin = pool(2);
  sql(admin, "CREATE ROLE ob_app LOGIN NOSUPERUSER NOBYPASSRLS");
  make_schema(admin, "ob_rls", true, "ob_app");
  db_pool *p = pool_as("ob_app", 4);

  append_n(p, "ob_rls", TENANT_A, 2, 1, NULL);
  append_n(p, "ob_rls", TENANT_B, 3, 3, NULL);
  /* the policy binds the writer: no rows for another tenant */
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_begin(c, TENANT_A));
  outbox_event ev = {.topic = "t", .type = "T", .tenant_id = TENANT_B};
  ck_assert_int_ne(outbox_append(c, "ob_rls", &ev), ERR_OK);
  (void)db_rollback(c);

  /* a tenant transaction sees its own rows only; no tenant, none */
  OK(db_begin(c, TENANT_A));
  db_result *res = NULL;
  OK(db_exec(c, "SELECT count(*) FROM ob_rls.outbox", NULL, 0, &res));
  ck_assert_str_eq(db_get(res, 0, 0), "2");
  db_result_free(res);
  OK(db_commit(c));
  OK(db_exec(c, "SELECT count(*) FROM ob_rls.outbox", NULL, 0, &res));
  ck_assert_str_eq(db_get(res, 0, 0), "0");
  db_result_free(res);
  db_release(c);

  recorder r;
  rec_init(&r);
  outbox *ob = relay_on(p, "ob_rls", &r, 0);
  size_t n = 0;
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 5);
  for (size_t i = 0; i < 5; i++) {
    ck_assert_uint_eq(r.ev[i].seq, i + 1);
    ck_assert_str_eq(r.ev[i].tenant, i < 2 ? TENANT_A : TENANT_B);
  }
  uint64_t last = 0;
  OK(outbox_last_seq(ob, &last));
  ck_assert_uint_eq(last, 5);
  /* the relay's setting did not leak into the pooled connections */
  OK(db_acquire(p, &c));
  OK(db_exec(c, "SELECT count(*) FROM ob_rls.outbox", NULL, 0, &res));
  ck_assert_str_eq(db_get(res, 0, 0), "0");
  db_result_free(res);
  db_release(c);
  outbox_free(ob);
  db_pool_free(p);
  db_pool_free(admin);
}
END_TEST

/* ----------------------------------------------------------- Replay --- */

typedef struct replay_env {
  rpc_server *srv;
  rpc_client *cli;
} replay_env;

static void replay_env_start(replay_env *e, outbox *ob) {
  OK(rpc_server_new(NULL, &e->srv));
  OK(outbox_register_replay(ob, e->srv));
  OK(rpc_server_start(e->srv, "tcp://127.0.0.1:0"));
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", rpc_server_port(e->srv));
  OK(rpc_client_new(url, NULL, &e->cli));
  OK(rpc_client_wait_connected(e->cli, 1, 5000));
}

static void replay_env_stop(replay_env *e) {
  rpc_client_free(e->cli);
  rpc_server_close(e->srv);
}

/* Calls Replay; returns the code, *out the decoded answer on OK. */
static int replay_call(replay_env *e, const char *source, uint64_t after,
                       uint32_t limit, Rpc__V1__ReplayResponse **out) {
  char method[128];
  snprintf(method, sizeof method, "%s.v1.Events/Replay", source);
  Rpc__V1__ReplayRequest rq = RPC__V1__REPLAY_REQUEST__INIT;
  rq.after_seq = after;
  rq.limit = limit;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 5000;
  rpc_result *res = NULL;
  OK(rpc_client_call_message(e->cli, method, &rq.base, &o, &res));
  int code = res->code;
  *out = NULL;
  if (code == RPC_OK) {
    *out =
        rpc__v1__replay_response__unpack(NULL, res->payload_len, res->payload);
    ck_assert_ptr_nonnull(*out);
  }
  rpc_result_free(res);
  return code;
}

static void expect_seqs(replay_env *e, const char *s, uint64_t after,
                        uint32_t limit, uint64_t first, size_t n,
                        uint64_t last) {
  Rpc__V1__ReplayResponse *rr = NULL;
  ck_assert_int_eq(replay_call(e, s, after, limit, &rr), RPC_OK);
  ck_assert_uint_eq(rr->n_events, n);
  ck_assert_uint_eq(rr->last_seq, last);
  for (size_t i = 0; i < n; i++) {
    Rpc__V1__Event *ev = rr->events[i];
    ck_assert_uint_eq(ev->seq, first + i);
    ck_assert_str_eq(ev->source, s);
    ck_assert(uuid_is_valid(ev->id));
    char want[32];
    snprintf(want, sizeof want, "payload-%" PRIu64, first + i);
    ck_assert_uint_eq(ev->payload.len, strlen(want));
    ck_assert(memcmp(ev->payload.data, want, ev->payload.len) == 0);
  }
  rpc__v1__replay_response__free_unpacked(rr, NULL);
}

START_TEST(replay_serves_sequenced_events_and_not_found_after_pruning) {
  db_pool *p = pool(6);
  const char *s = "ob_replay";
  make_schema(p, s, false, NULL);
  outbox *ob = relay_on(p, s, NULL, 0); /* no publisher: sequence + mark */
  replay_env e;
  replay_env_start(&e, ob);

  /* nothing yet */
  expect_seqs(&e, s, 0, 0, 1, 0, 0);
  append_n(p, s, NULL, 10, 1, NULL);
  /* committed but not sequenced: not served yet */
  expect_seqs(&e, s, 0, 0, 1, 0, 0);
  size_t n = 0;
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 10);
  /* two more, sequenced but never published (failing publisher) */
  append_n(p, s, NULL, 2, 11, NULL);
  recorder failing;
  rec_init(&failing);
  failing.fail_at = 0;
  failing.fail_always = true;
  outbox *bad = relay_on(p, s, &failing, 0);
  ck_assert_int_eq(outbox_relay_once(bad, &n), ERR_UNAVAILABLE);

  expect_seqs(&e, s, 0, 0, 1, 12, 12);    /* limit 0: the default */
  expect_seqs(&e, s, 5, 3, 6, 3, 12);     /* after_seq and limit */
  expect_seqs(&e, s, 10, 100, 11, 2, 12); /* unpublished are facts too */
  expect_seqs(&e, s, 12, 0, 1, 0, 12);
  expect_seqs(&e, s, 1000, 0, 1, 0, 12); /* ahead of the source */
  expect_seqs(&e, s, UINT64_MAX, 0, 1, 0, 12);

  /* pruning: everything is old, 1..10 published, 11 and 12 not */
  sqlf(p, "UPDATE %s.outbox SET created_at = now() - interval '1 hour'", s);
  size_t deleted = 0;
  OK(outbox_prune(ob, 60000, &deleted));
  ck_assert_uint_eq(deleted, 10);
  Rpc__V1__ReplayResponse *rr = NULL;
  ck_assert_int_eq(replay_call(&e, s, 0, 0, &rr), RPC_NOT_FOUND);
  ck_assert_int_eq(replay_call(&e, s, 9, 0, &rr), RPC_NOT_FOUND);
  expect_seqs(&e, s, 10, 0, 11, 2, 12);

  /* once published, all but the newest go; max(seq) stays */
  outbox_free(bad);
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 2);
  OK(outbox_prune(ob, 60000, &deleted));
  ck_assert_uint_eq(deleted, 1);
  ck_assert_int_eq(replay_call(&e, s, 10, 0, &rr), RPC_NOT_FOUND);
  expect_seqs(&e, s, 11, 0, 12, 1, 12);
  expect_seqs(&e, s, 12, 0, 1, 0, 12);
  append_n(p, s, NULL, 1, 13, NULL);
  OK(outbox_relay_once(ob, &n));
  expect_seqs(&e, s, 12, 0, 13, 1, 13);

  /* garbage in: INVALID_ARGUMENT */
  rpc_result *res = NULL;
  OK(rpc_client_call(e.cli, "ob_replay.v1.Events/Replay", "\xff\xff\xff", 3,
                     NULL, &res));
  ck_assert_int_eq(res->code, RPC_INVALID_ARGUMENT);
  rpc_result_free(res);

  replay_env_stop(&e);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(replay_answers_stay_within_the_envelope) {
  db_pool *p = pool(4);
  const char *s = "ob_big";
  make_schema(p, s, false, NULL);
  outbox *ob = relay_on(p, s, NULL, 0);
  replay_env e;
  replay_env_start(&e, ob);
  /* 40 payloads of 200 KiB: 8 MB, twice libs/rpc's 4 MiB envelope */
  size_t len = 200 * 1024;
  char *big = malloc(len);
  ck_assert_ptr_nonnull(big);
  memset(big, 'z', len);
  for (int i = 0; i < 40; i++) {
    db_conn *c = NULL;
    OK(db_acquire(p, &c));
    OK(db_begin(c, NULL));
    outbox_event ev = {
        .topic = "big", .type = "Big", .payload = big, .len = len};
    OK(outbox_append(c, s, &ev));
    OK(db_commit(c));
    db_release(c);
  }
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_begin(c, NULL));
  outbox_event huge = {.topic = "big",
                       .type = "Big",
                       .payload = big,
                       .len = OUTBOX_PAYLOAD_MAX + 1};
  ck_assert_int_eq(outbox_append(c, s, &huge), ERR_TOOBIG);
  (void)db_rollback(c);
  db_release(c);
  free(big);
  size_t n = 0;
  OK(outbox_relay_once(ob, &n)); /* several bounded rounds */
  ck_assert_uint_eq(n, 40);

  uint64_t after = 0;
  int calls = 0;
  while (after < 40) {
    Rpc__V1__ReplayResponse *rr = NULL;
    ck_assert_int_eq(replay_call(&e, s, after, 1000, &rr), RPC_OK);
    ck_assert_uint_gt(rr->n_events, 0);
    ck_assert_uint_lt(rr->n_events, 40);
    for (size_t i = 0; i < rr->n_events; i++) {
      ck_assert_uint_eq(rr->events[i]->seq, after + 1);
      ck_assert_uint_eq(rr->events[i]->payload.len, len);
      after++;
    }
    ck_assert_uint_eq(rr->last_seq, 40);
    rpc__v1__replay_response__free_unpacked(rr, NULL);
    calls++;
  }
  ck_assert_int_ge(calls, 4);
  replay_env_stop(&e);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(prune_deletes_only_a_prefix_and_keeps_the_newest_row) {
  db_pool *p = pool(4);
  const char *s = "ob_prune";
  make_schema(p, s, false, NULL);
  outbox *ob = relay_on(p, s, NULL, 0);
  append_n(p, s, NULL, 5, 1, NULL);
  size_t n = 0, deleted = 0;
  OK(outbox_relay_once(ob, &n));
  ck_assert_uint_eq(n, 5);
  /* young rows stay */
  OK(outbox_prune(ob, 60000, &deleted));
  ck_assert_uint_eq(deleted, 0);
  /* all old but seq 3: only 1 and 2 may go (no hole at 3) */
  sqlf(p,
       "UPDATE %s.outbox SET created_at = now() - interval '1 hour' "
       "WHERE seq <> 3",
       s);
  OK(outbox_prune(ob, 60000, &deleted));
  ck_assert_uint_eq(deleted, 2);
  ck_assert_int_eq(count(p, "SELECT min(seq) FROM %s.outbox", s), 3);
  /* keep_ms 0: everything published, except the newest */
  OK(outbox_prune(ob, 0, &deleted));
  ck_assert_uint_eq(deleted, 2);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM %s.outbox", s), 1);
  ck_assert_int_eq(count(p, "SELECT max(seq) FROM %s.outbox", s), 5);
  OK(outbox_prune(ob, 0, &deleted));
  ck_assert_uint_eq(deleted, 0);
  /* unsequenced rows are never pruned; numbering goes on after 5 */
  append_n(p, s, NULL, 1, 6, NULL);
  OK(outbox_prune(ob, 0, &deleted));
  ck_assert_uint_eq(deleted, 0);
  recorder r;
  rec_init(&r);
  outbox *ob2 = relay_on(p, s, &r, 0);
  OK(outbox_relay_once(ob2, &n));
  ck_assert_uint_eq(r.n, 1);
  ck_assert_uint_eq(r.ev[0].seq, 6);
  outbox_free(ob2);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(relay_thread_runs_on_kicks_and_on_its_poll) {
  db_pool *p = pool(4);
  const char *s = "ob_thread";
  make_schema(p, s, false, NULL);
  recorder r;
  rec_init(&r);
  outbox_options o = {.schema = s,
                      .source = s,
                      .publish = rec_publish,
                      .publish_arg = &r,
                      .poll_ms = 60000};
  outbox *ob = NULL;
  OK(outbox_new(p, &o, &ob));
  OK(outbox_start(ob));
  time_sleep_ms(200); /* its first pass found nothing */
  append_n(p, s, NULL, 3, 1, NULL);
  outbox_kick(ob);
  int64_t end = time_mono_ms() + 5000;
  while (rec_count(&r) < 3 && time_mono_ms() < end) time_sleep_ms(10);
  ck_assert_uint_eq(rec_count(&r), 3);
  outbox_free(ob);

  /* no kick: a short poll finds rows another process committed */
  o.poll_ms = 100;
  OK(outbox_new(p, &o, &ob));
  OK(outbox_start(ob));
  append_n(p, s, NULL, 2, 4, NULL);
  end = time_mono_ms() + 5000;
  while (rec_count(&r) < 5 && time_mono_ms() < end) time_sleep_ms(10);
  ck_assert_uint_eq(rec_count(&r), 5);
  for (size_t i = 0; i < 5; i++) ck_assert_uint_eq(r.ev[i].seq, i + 1);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

/* ------------------------------------------------------ bus end to end --- */

typedef struct sink {
  pthread_mutex_t mu;
  uint64_t seq[256];
  size_t n;
} sink;

static int on_event(void *arg, const Rpc__V1__Event *ev) {
  sink *k = arg;
  pthread_mutex_lock(&k->mu);
  if (k->n < 256) k->seq[k->n++] = ev->seq;
  pthread_mutex_unlock(&k->mu);
  return ERR_OK;
}

static int backfill(void *arg, const char *source, uint64_t after,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  return bus_replay_fetch(arg, source, after, limit, 3000, out);
}

typedef struct lossy {
  bus_publisher *pub;
  atomic_int calls;
} lossy;

/* Drops every third event, as a congested nng PUB would. */
static int lossy_publish(void *arg, const Rpc__V1__Event *ev) {
  lossy *l = arg;
  if (atomic_fetch_add(&l->calls, 1) % 3 == 1) return ERR_OK;
  return bus_publish_event(l->pub, ev);
}

START_TEST(subscriber_gets_every_event_once_through_bus_and_replay) {
  db_pool *p = pool(6);
  const char *s = "ob_bus";
  make_schema(p, s, false, NULL);
  lossy l = {0};
  OK(bus_publisher_new("tcp://127.0.0.1:0", s, 0, NULL, &l.pub));
  outbox_options o = {.schema = s,
                      .source = s,
                      .publish = lossy_publish,
                      .publish_arg = &l,
                      .poll_ms = 100};
  outbox *ob = NULL;
  OK(outbox_new(p, &o, &ob));
  replay_env e;
  replay_env_start(&e, ob);

  sink k = {.n = 0};
  pthread_mutex_init(&k.mu, NULL);
  bus_subscriber_options so;
  bus_subscriber_options_init(&so);
  so.tracker.backfill = backfill;
  so.tracker.backfill_arg = e.cli;
  so.tracker.retry_min_ms = 50;
  so.tracker.retry_max_ms = 500;
  so.tracker.idle_check_ms = 200;
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", bus_publisher_port(l.pub));
  bus_subscriber *sub = NULL;
  OK(bus_subscriber_new(url, on_event, &k, &so, &sub));
  OK(bus_subscribe_prefix(sub, ""));
  OK(bus_subscriber_set_position(sub, s, 0));
  OK(bus_subscriber_start(sub));
  OK(bus_subscriber_wait_connected(sub, 1, 5000));
  OK(outbox_start(ob));

  for (int i = 0; i < 60; i++) {
    append_n(p, s, TENANT_A, 1 + i % 2, i * 2 + 1, NULL);
    outbox_kick(ob);
    if (i % 10 == 0) time_sleep_ms(20);
  }
  int64_t end = time_mono_ms() + 15000;
  for (;;) {
    pthread_mutex_lock(&k.mu);
    size_t got = k.n;
    pthread_mutex_unlock(&k.mu);
    if (got >= 90 || time_mono_ms() > end) break;
    time_sleep_ms(20);
  }
  time_sleep_ms(400); /* nothing more may arrive */
  pthread_mutex_lock(&k.mu);
  ck_assert_uint_eq(k.n, 90);
  for (size_t i = 0; i < k.n; i++) ck_assert_uint_eq(k.seq[i], i + 1);
  pthread_mutex_unlock(&k.mu);
  bus_stats st;
  bus_subscriber_get_stats(sub, &st);
  ck_assert_uint_gt(st.backfilled, 0);
  bus_subscriber_free(sub);
  outbox_free(ob);
  replay_env_stop(&e);
  bus_publisher_free(l.pub);
  db_pool_free(p);
}
END_TEST

int main(void) {
  harness_init();
  if (harness_pg_start(&g_pg) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start PostgreSQL\n");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("outbox_itest");
  TCase *relay = tcase_create("relay");
  tcase_set_timeout(relay, 120);
  tcase_add_test(relay, rolled_back_append_leaves_nothing);
  tcase_add_test(relay, events_are_published_in_seq_order_without_holes);
  tcase_add_test(relay, failed_publish_is_retried_next_pass_in_order);
  tcase_add_test(relay, concurrent_relays_publish_each_event_once_in_order);
  tcase_add_test(relay,
                 rows_sequenced_by_a_dead_relay_are_published_by_the_next);
  tcase_add_test(relay, relay_sees_every_tenant_under_forced_rls);
  tcase_add_test(relay, relay_thread_runs_on_kicks_and_on_its_poll);
  suite_add_tcase(s, relay);

  TCase *replay = tcase_create("replay");
  tcase_set_timeout(replay, 120);
  tcase_add_test(replay,
                 replay_serves_sequenced_events_and_not_found_after_pruning);
  tcase_add_test(replay, replay_answers_stay_within_the_envelope);
  tcase_add_test(replay, prune_deletes_only_a_prefix_and_keeps_the_newest_row);
  tcase_add_test(replay,
                 subscriber_gets_every_event_once_through_bus_and_replay);
  suite_add_tcase(s, replay);

  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
