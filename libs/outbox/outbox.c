/*
 * outbox.c - the transactional outbox: append, the relay and its thread,
 * Replay, pruning (the design is in outbox.h).
 *
 * The schema name has to be part of the SQL text (identifiers cannot be
 * parameters), so every statement is built once, in outbox_new, from a
 * template whose "{o}" becomes "<schema>".outbox, after the name was
 * checked to be [a-z_][a-z0-9_]*; values still travel as parameters.
 *
 * A relay pass runs on one pooled connection that holds the session
 * advisory lock. Every relay transaction on it re-reads pg_backend_pid()
 * together with its SET LOCAL app.outbox_relay: libs/db silently replaces
 * a connection that died between transactions, and a new session does not
 * hold the lock, so a changed pid ends the pass instead of relaying
 * without the lock. Rows are read with a running byte total (window sum)
 * so a batch of large payloads stays around FETCH_BYTES in memory and in a
 * Replay answer.
 *
 * The relay thread sleeps on a condition variable; outbox_kick sets an
 * atomic flag and signals only when no wake-up is pending yet.
 */
#include "libs/outbox/outbox.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/outbox/outbox_internal.h"
#include "libs/rpc/rpc.h"

#define DEFAULT_POLL_MS 1000
#define DEFAULT_BATCH 256
#define MAX_BATCH 10000
#define DEFAULT_KEEP_MS (7LL * 24 * 3600 * 1000)
#define PRUNE_EVERY_MS 60000
#define DEFAULT_LINGER_MS 5
#define CONFLICT_RETRY_MS 100 /* another relay holds the lock: look again */
#define SQL_MAX 1024

/* Rows are read until their estimated size passes FETCH_BYTES; the
 * estimate of a row is its payload plus ROW_OVERHEAD (ids, topic, type,
 * framing), so one answer stays under FETCH_BYTES + ROW_MAX. */
#define FETCH_BYTES (2 * 1024 * 1024)
#define ROW_OVERHEAD 512
#define ROW_MAX ((int64_t)OUTBOX_PAYLOAD_MAX + ROW_OVERHEAD)
#define STR_(x) #x
#define STR(x) STR_(x)

/* ------------------------------------------------------------- SQL --- */

#define SQL_RELAY_ON                                                           \
  "SELECT set_config('app.outbox_relay', 'on', true), pg_backend_pid()"
#define SQL_LOCK                                                               \
  "SELECT pg_try_advisory_lock(hashtextextended($1, 0)), pg_backend_pid()"
#define SQL_UNLOCK "SELECT pg_advisory_unlock(hashtextextended($1, 0))"

#define SQL_APPEND                                                             \
  "INSERT INTO {o} (event_id, topic, type, tenant_id, payload) "               \
  "VALUES ($1::uuid, $2, $3, $4::uuid, $5)"

/* Numbers the oldest unsequenced rows after the highest seq so far:
 * row_number() gives 1, 2, 3, ... in id order. */
#define SQL_SEQUENCE                                                           \
  "WITH next AS ("                                                             \
  " SELECT id, (SELECT coalesce(max(seq), 0) FROM {o})"                        \
  "        + row_number() OVER (ORDER BY id) AS seq"                           \
  " FROM {o} WHERE seq IS NULL ORDER BY id LIMIT $1)"                          \
  " UPDATE {o} AS o SET seq = next.seq FROM next WHERE o.id = next.id"

/* Sequenced rows in seq order, at most a count and about a byte budget:
 * a row is returned when the rows before it stay under the budget. The
 * columns are what rows_load reads. */
#define ROW_SIZE "(octet_length(payload) + " STR(ROW_OVERHEAD) ")"
#define SQL_ROWS(where, lim, budget)                                           \
  "SELECT event_id, topic, type, tenant_id, payload, ms, seq, cum FROM ("      \
  " SELECT event_id::text AS event_id, topic, type,"                           \
  "        coalesce(tenant_id::text, '') AS tenant_id, payload,"               \
  "        floor(extract(epoch FROM created_at) * 1000)::bigint AS ms,"        \
  "        seq, " ROW_SIZE " AS sz,"                                           \
  "        sum" ROW_SIZE " OVER (ORDER BY seq) AS cum"                         \
  " FROM {o} WHERE " where " ORDER BY seq LIMIT " lim ") r"                    \
  " WHERE cum - sz < " budget " ORDER BY seq"

#define SQL_UNPUBLISHED                                                        \
  SQL_ROWS("seq IS NOT NULL AND published_at IS NULL", "$1", "$2")
#define SQL_REPLAY SQL_ROWS("seq > $1", "$2", "$3")

#define SQL_MARK                                                               \
  "UPDATE {o} SET published_at = now() WHERE seq IS NOT NULL"                  \
  " AND published_at IS NULL AND seq <= $1"

#define SQL_GAUGES                                                             \
  "SELECT (SELECT count(*) FROM {o} WHERE seq IS NULL)"                        \
  " + (SELECT count(*) FROM {o} WHERE seq IS NOT NULL"                         \
  "    AND published_at IS NULL),"                                             \
  " (SELECT coalesce(max(seq), 0) FROM {o})"

#define SQL_LAST "SELECT coalesce(max(seq), 0) FROM {o}"
#define SQL_BOUNDS                                                             \
  "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM {o}"

/* Deletes below the first row that must stay (unpublished, or younger
 * than keep_ms), found along the seq index, and below max(seq) anyway. */
#define SQL_PRUNE                                                              \
  "DELETE FROM {o} WHERE seq < coalesce("                                      \
  " (SELECT seq FROM {o} WHERE seq IS NOT NULL AND (published_at IS NULL"      \
  "  OR created_at >= now() - make_interval(secs => $1::bigint / 1000.0))"     \
  "  ORDER BY seq LIMIT 1),"                                                   \
  " (SELECT max(seq) FROM {o}))"

/* ------------------------------------------------------------ state --- */

struct outbox {
  db_pool *db;
  char schema[OUTBOX_SCHEMA_MAX + 1];
  char source[OUTBOX_SOURCE_MAX + 1];
  char lock_key[OUTBOX_SCHEMA_MAX + 8]; /* "outbox:<schema>" */
  char method[RPC_MAX_METHOD_LEN + 1];
  outbox_publish_fn publish;
  void *publish_arg;
  int64_t poll_ms, keep_ms, linger_ms;
  size_t batch;

  char q_sequence[SQL_MAX], q_unpublished[SQL_MAX], q_mark[SQL_MAX],
      q_gauges[SQL_MAX], q_last[SQL_MAX], q_bounds[SQL_MAX], q_replay[SQL_MAX],
      q_prune[SQL_MAX];

  metrics_child *m_published, *m_errors, *m_pending, *m_last, *m_pruned;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_bool kicked, stop;
  atomic_bool gauges_known; /* a full gauge query has run (see relay_once) */
  bool started;
  pthread_t thread;
};

/* ------------------------------------------------------- pure parts --- */

bool outbox_schema_ok(const char *s) {
  if (s == NULL) return false;
  size_t n = strnlen(s, OUTBOX_SCHEMA_MAX + 1);
  if (n == 0 || n > OUTBOX_SCHEMA_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    bool ok = (ch >= 'a' && ch <= 'z') || ch == '_' ||
              (i > 0 && ch >= '0' && ch <= '9');
    if (!ok) return false;
  }
  return true;
}

bool outbox_source_ok(const char *s) {
  if (s == NULL) return false;
  size_t n = strnlen(s, OUTBOX_SOURCE_MAX + 1);
  if (n == 0 || n > OUTBOX_SOURCE_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
          ch == '.' || ch == '-'))
      return false;
  }
  return true;
}

static bool text_ok(const char *s, size_t max) {
  if (s == NULL) return false;
  size_t n = strnlen(s, max + 1);
  return n >= 1 && n <= max && str_is_printable(s, n);
}

int outbox_event_check(const outbox_event *ev) {
  if (ev == NULL || !text_ok(ev->topic, OUTBOX_TOPIC_MAX) ||
      !text_ok(ev->type, OUTBOX_TYPE_MAX))
    return ERR_INVAL;
  if (ev->tenant_id != NULL && ev->tenant_id[0] != '\0' &&
      !uuid_is_valid(ev->tenant_id))
    return ERR_INVAL;
  if (ev->len > 0 && ev->payload == NULL) return ERR_INVAL;
  if (ev->len > OUTBOX_PAYLOAD_MAX) return ERR_TOOBIG;
  return ERR_OK;
}

int outbox_sql(const char *tmpl, const char *schema, char *out, size_t cap) {
  if (tmpl == NULL || out == NULL || cap == 0 || !outbox_schema_ok(schema))
    return ERR_INVAL;
  char table[OUTBOX_SCHEMA_MAX + 16];
  int tl = snprintf(table, sizeof table, "\"%s\".outbox", schema);
  if (tl < 0 || (size_t)tl >= sizeof table) return ERR_INVAL;
  size_t o = 0;
  for (const char *p = tmpl; *p != '\0';) {
    const char *piece = p;
    size_t len = 1;
    if (strncmp(p, "{o}", 3) == 0) {
      piece = table;
      len = (size_t)tl;
      p += 3;
    } else {
      p++;
    }
    if (o + len >= cap) return ERR_TOOBIG;
    memcpy(out + o, piece, len);
    o += len;
  }
  out[o] = '\0';
  return ERR_OK;
}

/* ----------------------------------------------------------- append --- */

int outbox_append_stmt(const char *schema, const outbox_event *ev,
                       outbox_stmt *out) {
  memset(out, 0, sizeof *out);
  /* Every check happens before the INSERT: a failed statement would
   * abort the caller's whole transaction. */
  if (!outbox_schema_ok(schema)) return ERR_INVAL;
  int rc = outbox_event_check(ev);
  if (rc == ERR_OK)
    rc = outbox_sql(SQL_APPEND, schema, out->sql, sizeof out->sql);
  if (rc != ERR_OK) return rc;
  uuid_v7_str(out->event_id);
  const char *tenant =
      ev->tenant_id != NULL && ev->tenant_id[0] != '\0' ? ev->tenant_id : NULL;
  out->ps[0] = db_text(out->event_id);
  out->ps[1] = db_text(ev->topic);
  out->ps[2] = db_text(ev->type);
  out->ps[3] = db_text(tenant);
  out->ps[4] = db_bytes(ev->payload, ev->len);
  out->stmt = (db_stmt){.sql = out->sql, .params = out->ps, .nparams = 5};
  return ERR_OK;
}

int outbox_append(db_conn *c, const char *schema, const outbox_event *ev) {
  if (c == NULL) return ERR_INVAL;
  if (!db_in_tx(c)) return ERR_INVAL;
  outbox_stmt st;
  int rc = outbox_append_stmt(schema, ev, &st);
  if (rc == ERR_OK) rc = db_exec(c, st.sql, st.ps, st.stmt.nparams, NULL);
  if (rc == ERR_OK && ev->event_id_out != NULL)
    memcpy(ev->event_id_out, st.event_id, sizeof st.event_id);
  return rc;
}

/* ------------------------------------------------------------- rows --- */

/* A batch of rows as events. The strings point into r; payloads are
 * decoded copies this batch owns. */
typedef struct rows {
  db_result *r;
  Rpc__V1__Event *ev;
  size_t n;
  int64_t cum_last; /* estimated bytes of the batch */
} rows;

static void rows_free(rows *b) {
  for (size_t i = 0; i < b->n; i++) free(b->ev[i].payload.data);
  free(b->ev);
  db_result_free(b->r);
  memset(b, 0, sizeof *b);
}

/* Takes r (freed with the batch, also on failure). */
static int rows_load(const outbox *ob, db_result *r, rows *b) {
  memset(b, 0, sizeof *b);
  b->r = r;
  int nrows = db_nrows(r);
  if (nrows <= 0) return ERR_OK;
  b->ev = calloc((size_t)nrows, sizeof *b->ev);
  if (b->ev == NULL) {
    rows_free(b);
    return ERR_NOMEM;
  }
  b->n = (size_t)nrows;
  for (int i = 0; i < nrows; i++) {
    Rpc__V1__Event *e = &b->ev[i];
    rpc__v1__event__init(e);
    e->id = (char *)db_get(r, i, 0);
    e->topic = (char *)db_get(r, i, 1);
    e->type = (char *)db_get(r, i, 2);
    e->tenant_id = (char *)db_get(r, i, 3);
    e->source = (char *)ob->source;
    int64_t seq = 0;
    int rc = db_get_bytes(r, i, 4, &e->payload.data, &e->payload.len);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 5, &e->time_unix_ms);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 6, &seq);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 7, &b->cum_last);
    if (rc == ERR_OK && (e->id == NULL || e->topic == NULL || e->type == NULL ||
                         e->tenant_id == NULL || seq <= 0))
      rc = ERR_INTERNAL;
    if (rc != ERR_OK) {
      rows_free(b);
      return rc;
    }
    e->seq = (uint64_t)seq;
  }
  return ERR_OK;
}

/* --------------------------------------------------------------- new --- */

static metrics_child *child(metrics_family *f, const char *source) {
  const char *v[1] = {source};
  return metrics_child_get(f, v);
}

static void metrics_init(outbox *ob) {
  static const char *const labels[1] = {"source"};
  ob->m_published =
      child(metrics_counter("outbox_published_total",
                            "Outbox events handed to the bus.", 1, labels),
            ob->source);
  ob->m_errors = child(
      metrics_counter("outbox_relay_errors_total",
                      "Outbox relay passes that failed (database or publish).",
                      1, labels),
      ob->source);
  ob->m_pending =
      child(metrics_gauge("outbox_pending",
                          "Committed outbox rows not yet published, after the "
                          "last relay pass.",
                          1, labels),
            ob->source);
  ob->m_last = child(metrics_gauge("outbox_last_seq",
                                   "Highest sequence number given.", 1, labels),
                     ob->source);
  ob->m_pruned =
      child(metrics_counter("outbox_pruned_total",
                            "Published outbox rows deleted.", 1, labels),
            ob->source);
}

static int build_sql(outbox *ob) {
  struct {
    const char *tmpl;
    char *out;
  } qs[] = {
      {SQL_SEQUENCE, ob->q_sequence}, {SQL_UNPUBLISHED, ob->q_unpublished},
      {SQL_MARK, ob->q_mark},         {SQL_GAUGES, ob->q_gauges},
      {SQL_LAST, ob->q_last},         {SQL_BOUNDS, ob->q_bounds},
      {SQL_REPLAY, ob->q_replay},     {SQL_PRUNE, ob->q_prune},
  };
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
    int rc = outbox_sql(qs[i].tmpl, ob->schema, qs[i].out, SQL_MAX);
    if (rc != ERR_OK) return rc == ERR_TOOBIG ? ERR_INTERNAL : rc;
  }
  return ERR_OK;
}

int outbox_new(db_pool *db, const outbox_options *opts, outbox **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (db == NULL || opts == NULL || !outbox_schema_ok(opts->schema) ||
      !outbox_source_ok(opts->source) || opts->poll_ms < 0 || opts->keep_ms < 0)
    return ERR_INVAL;
  outbox *ob = calloc(1, sizeof *ob);
  if (ob == NULL) return ERR_NOMEM;
  ob->db = db;
  str_copy(ob->schema, opts->schema, sizeof ob->schema);
  str_copy(ob->source, opts->source, sizeof ob->source);
  snprintf(ob->lock_key, sizeof ob->lock_key, "outbox:%s", ob->schema);
  snprintf(ob->method, sizeof ob->method, "%s.v1.Events/Replay", ob->source);
  ob->publish = opts->publish;
  ob->publish_arg = opts->publish_arg;
  ob->poll_ms = opts->poll_ms ? opts->poll_ms : DEFAULT_POLL_MS;
  ob->linger_ms = opts->linger_ms == 0  ? DEFAULT_LINGER_MS
                  : opts->linger_ms < 0 ? 0
                                        : opts->linger_ms;
  ob->keep_ms = opts->keep_ms ? opts->keep_ms : DEFAULT_KEEP_MS;
  ob->batch = opts->batch ? opts->batch : DEFAULT_BATCH;
  if (ob->batch > MAX_BATCH) ob->batch = MAX_BATCH;
  atomic_init(&ob->kicked, false);
  atomic_init(&ob->gauges_known, false);
  atomic_init(&ob->stop, false);
  int rc = build_sql(ob);
  if (rc != ERR_OK) {
    free(ob);
    return rc;
  }
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) {
    free(ob);
    return ERR_INTERNAL;
  }
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  bool bad = pthread_mutex_init(&ob->mu, NULL) != 0;
  if (!bad && pthread_cond_init(&ob->cv, &ca) != 0) {
    pthread_mutex_destroy(&ob->mu);
    bad = true;
  }
  pthread_condattr_destroy(&ca);
  if (bad) {
    free(ob);
    return ERR_INTERNAL;
  }
  metrics_init(ob);
  *out = ob;
  return ERR_OK;
}

/* ------------------------------------------------------- relay pass --- */

static int read_int64(db_conn *c, const char *sql, const db_param *ps, int nps,
                      int64_t *out) {
  db_result *r = NULL;
  int rc = db_exec(c, sql, ps, nps, &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? db_get_int64(r, 0, 0, out) : ERR_INTERNAL;
  db_result_free(r);
  return rc;
}

/* BEGIN and SET LOCAL app.outbox_relay = 'on'. With pid > 0, also makes
 * sure the transaction runs on the session that holds the pass's lock
 * (ERR_UNAVAILABLE otherwise). */
static int relay_begin(db_conn *c, const db_tx_opts *o, int64_t pid) {
  int rc = db_begin_opts(c, o);
  if (rc != ERR_OK) return rc;
  db_result *r = NULL;
  rc = db_exec(c, SQL_RELAY_ON, NULL, 0, &r);
  int64_t now_pid = 0;
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? db_get_int64(r, 0, 1, &now_pid) : ERR_INTERNAL;
  db_result_free(r);
  if (rc == ERR_OK && pid > 0 && now_pid != pid)
    rc = ERR_UNAVAILABLE; /* reconnected: the lock went with the old one */
  if (rc != ERR_OK) (void)db_rollback(c);
  return rc;
}

/* Step 1 (and the read of step 2) in one transaction: sequence, read the
 * sequenced-but-unpublished rows, commit. *b is published only after
 * that commit, so a seq is durable before anything names it. */
static int step_sequence(const outbox *ob, db_conn *c, int64_t pid, rows *b,
                         size_t *sequenced) {
  memset(b, 0, sizeof *b);
  *sequenced = 0;
  db_tx_opts o = {0};
  int rc = relay_begin(c, &o, pid);
  if (rc != ERR_OK) return rc;
  db_param sp[] = {db_int64((int64_t)ob->batch)};
  db_result *r = NULL;
  rc = db_exec(c, ob->q_sequence, sp, DB_NPARAMS(sp), &r);
  if (rc == ERR_OK) *sequenced = (size_t)db_affected(r);
  db_result_free(r);
  r = NULL;
  if (rc == ERR_OK) {
    db_param fp[] = {db_int64((int64_t)ob->batch), db_int64(FETCH_BYTES)};
    rc = db_exec(c, ob->q_unpublished, fp, DB_NPARAMS(fp), &r);
  }
  if (rc == ERR_OK) rc = rows_load(ob, r, b);
  if (rc == ERR_OK) rc = db_commit(c);
  if (rc != ERR_OK) {
    (void)db_rollback(c);
    rows_free(b);
    *sequenced = 0;
  }
  return rc;
}

/* Step 3: everything up to upto went out (published in seq order, and no
 * other relay runs while the lock is held). */
static int step_mark(const outbox *ob, db_conn *c, int64_t pid, uint64_t upto) {
  db_tx_opts o = {0};
  int rc = relay_begin(c, &o, pid);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_int64((int64_t)upto)};
  rc = db_exec(c, ob->q_mark, ps, DB_NPARAMS(ps), NULL);
  if (rc == ERR_OK) rc = db_commit(c);
  if (rc != ERR_OK) (void)db_rollback(c);
  return rc;
}

static void update_gauges(const outbox *ob, db_conn *c, int64_t pid) {
  db_tx_opts o = {.read_only = true};
  if (relay_begin(c, &o, pid) != ERR_OK) return;
  db_result *r = NULL;
  int64_t pending = 0, last = 0;
  int rc = db_exec(c, ob->q_gauges, NULL, 0, &r);
  if (rc == ERR_OK && db_nrows(r) == 1 &&
      db_get_int64(r, 0, 0, &pending) == ERR_OK &&
      db_get_int64(r, 0, 1, &last) == ERR_OK) {
    metrics_set(ob->m_pending, (double)pending);
    metrics_set(ob->m_last, (double)last);
  }
  db_result_free(r);
  (void)db_rollback(c);
}

static void log_publish_failure(const outbox *ob, uint64_t seq, int rc) {
  char s[24];
  snprintf(s, sizeof s, "%" PRIu64, seq);
  log_warn("outbox: publishing an event failed; it goes out next pass",
           "source", ob->source, "seq", s, "error", err_str(rc));
}

/* Steps 1-3 until nothing is left, on c, which holds the lock. */
static int relay_loop(outbox *ob, db_conn *c, int64_t pid, size_t *total,
                      uint64_t *max_seq) {
  for (;;) {
    rows b;
    size_t sequenced = 0;
    int rc = step_sequence(ob, c, pid, &b, &sequenced);
    if (rc != ERR_OK) return rc;
    size_t sent = 0;
    int prc = ERR_OK;
    for (; sent < b.n; sent++) {
      if (ob->publish == NULL) continue;
      prc = ob->publish(ob->publish_arg, &b.ev[sent]);
      if (prc != ERR_OK) {
        log_publish_failure(ob, b.ev[sent].seq, prc);
        break;
      }
    }
    if (sent > 0) {
      rc = step_mark(ob, c, pid, b.ev[sent - 1].seq);
      if (b.ev[sent - 1].seq > *max_seq) *max_seq = b.ev[sent - 1].seq;
    }
    /* More may be waiting when a step hit its row or byte bound. */
    bool more = sequenced == ob->batch || b.n == ob->batch ||
                (b.n > 0 && b.cum_last + ROW_MAX > FETCH_BYTES);
    rows_free(&b);
    *total += sent;
    if (rc != ERR_OK)
      return rc; /* the sent rows go out again: duplicates, not losses */
    if (prc != ERR_OK) return prc;
    if (!more || atomic_load(&ob->stop)) return ERR_OK;
  }
}

/* The lock must not stay with a pooled connection: every later pass
 * would find it taken. A broken connection is discarded by db_release
 * (its session's locks die with it). */
static void unlock(const outbox *ob, db_conn *c) {
  (void)db_rollback(c);
  db_param ps[] = {db_text(ob->lock_key)};
  if (db_exec(c, SQL_UNLOCK, ps, DB_NPARAMS(ps), NULL) != ERR_OK &&
      db_exec(c, "SELECT pg_advisory_unlock_all()", NULL, 0, NULL) != ERR_OK) {
    /* Closing the session is the one sure way to free its lock. */
    db_conn_discard(c);
    log_error("outbox: cannot release the relay lock; closing the connection",
              "source", ob->source, "error", db_last_error()->message);
  }
}

int outbox_relay_once(outbox *ob, size_t *published) {
  if (published != NULL) *published = 0;
  if (ob == NULL) return ERR_INVAL;
  db_conn *c = NULL;
  int rc = db_acquire(ob->db, &c);
  if (rc != ERR_OK) {
    metrics_inc(ob->m_errors);
    return rc;
  }
  db_param ps[] = {db_text(ob->lock_key)};
  db_result *r = NULL;
  bool locked = false;
  int64_t pid = 0;
  rc = db_exec(c, SQL_LOCK, ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? db_get_bool(r, 0, 0, &locked) : ERR_INTERNAL;
  if (rc == ERR_OK) rc = db_get_int64(r, 0, 1, &pid);
  db_result_free(r);
  if (rc != ERR_OK) {
    if (locked) unlock(ob, c);
    db_release(c);
    metrics_inc(ob->m_errors);
    return rc;
  }
  if (!locked) {
    db_release(c);
    return ERR_CONFLICT;
  }
  size_t total = 0;
  uint64_t max_seq = 0;
  rc = relay_loop(ob, c, pid, &total, &max_seq);
  /* A pass that drained everything knows the gauges without asking: none
   * pending, the highest seq is the last one it sent (if any). Only the
   * first pass and passes that stopped early pay for the query - at full
   * load a pass runs every few milliseconds. */
  if (rc == ERR_OK && atomic_load(&ob->gauges_known)) {
    metrics_set(ob->m_pending, 0);
    if (max_seq > 0) metrics_set(ob->m_last, (double)max_seq);
  } else {
    update_gauges(ob, c, pid);
    if (rc == ERR_OK) atomic_store(&ob->gauges_known, true);
  }
  unlock(ob, c);
  db_release(c);
  metrics_add(ob->m_published, (double)total);
  if (rc != ERR_OK) metrics_inc(ob->m_errors);
  if (published != NULL) *published = total;
  return rc;
}

/* ---------------------------------------------------- other queries --- */

typedef struct scalar_args {
  const char *sql;
  const db_param *ps;
  int nps;
  int64_t value;
  bool affected; /* value = rows affected instead of a cell */
} scalar_args;

static int scalar_fn(db_conn *c, void *ud) {
  scalar_args *a = ud;
  db_result *r = NULL;
  int rc = db_exec(c, SQL_RELAY_ON, NULL, 0, NULL);
  if (rc != ERR_OK) return rc;
  if (!a->affected) return read_int64(c, a->sql, a->ps, a->nps, &a->value);
  rc = db_exec(c, a->sql, a->ps, a->nps, &r);
  if (rc == ERR_OK) a->value = db_affected(r);
  db_result_free(r);
  return rc;
}

int outbox_last_seq(outbox *ob, uint64_t *out) {
  if (out != NULL) *out = 0;
  if (ob == NULL || out == NULL) return ERR_INVAL;
  scalar_args a = {.sql = ob->q_last};
  db_tx_opts o = {.read_only = true};
  int rc = db_with_tx(ob->db, &o, DB_TX_RETRIES, scalar_fn, &a);
  if (rc == ERR_OK) {
    *out = (uint64_t)a.value;
    metrics_set(ob->m_last, (double)a.value);
  }
  return rc;
}

int outbox_prune(outbox *ob, int64_t keep_ms, size_t *deleted) {
  if (deleted != NULL) *deleted = 0;
  if (ob == NULL || keep_ms < 0) return ERR_INVAL;
  db_param ps[] = {db_int64(keep_ms)};
  scalar_args a = {.sql = ob->q_prune, .ps = ps, .nps = 1, .affected = true};
  int rc = db_with_tx(ob->db, NULL, DB_TX_RETRIES, scalar_fn, &a);
  if (rc == ERR_OK) {
    metrics_add(ob->m_pruned, (double)a.value);
    if (deleted != NULL) *deleted = (size_t)a.value;
  }
  return rc;
}

/* ----------------------------------------------------------- thread --- */

static void wait_ms(outbox *ob, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  while (!atomic_load(&ob->kicked) && !atomic_load(&ob->stop))
    if (pthread_cond_timedwait(&ob->cv, &ob->mu, &ts) != 0) break;
}

/* Waits ms unless stopped (kicks do not end it). Called with mu held. */
static void linger(outbox *ob, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_nsec += ms * 1000000L;
  while (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  while (!atomic_load(&ob->stop))
    if (pthread_cond_timedwait(&ob->cv, &ob->mu, &ts) != 0) break;
}

static void *relay_main(void *arg) {
  outbox *ob = arg;
  bool failing = false;
  int64_t next_prune = time_mono_ms();
  pthread_mutex_lock(&ob->mu);
  while (!atomic_load(&ob->stop)) {
    /* Woken by a commit: let the commits running alongside it land too,
     * so that one pass carries them all. */
    if (atomic_load(&ob->kicked) && ob->linger_ms > 0)
      linger(ob, ob->linger_ms);
    pthread_mutex_unlock(&ob->mu);
    atomic_store(&ob->kicked, false);
    int rc = outbox_relay_once(ob, NULL);
    int64_t next = ob->poll_ms;
    if (rc == ERR_CONFLICT) {
      /* Another relay is mid-pass and may have looked before our rows
       * committed: look again soon rather than a whole poll later. */
      next = ob->poll_ms < CONFLICT_RETRY_MS ? ob->poll_ms : CONFLICT_RETRY_MS;
    } else if (rc != ERR_OK && !failing) {
      log_warn("outbox relay failed; retrying", "source", ob->source, "error",
               err_str(rc));
      failing = true;
    } else if (rc == ERR_OK && failing) {
      log_info("outbox relay recovered", "source", ob->source);
      failing = false;
    }
    int64_t now = time_mono_ms();
    if (now >= next_prune && !atomic_load(&ob->stop)) {
      next_prune = now + PRUNE_EVERY_MS;
      size_t pruned = 0;
      int prc = outbox_prune(ob, ob->keep_ms, &pruned);
      if (prc != ERR_OK)
        log_warn("outbox: pruning failed", "source", ob->source, "error",
                 err_str(prc));
    }
    pthread_mutex_lock(&ob->mu);
    if (atomic_load(&ob->kicked) || atomic_load(&ob->stop)) continue;
    wait_ms(ob, next);
  }
  pthread_mutex_unlock(&ob->mu);
  return NULL;
}

int outbox_start(outbox *ob) {
  if (ob == NULL || ob->started) return ERR_INVAL;
  if (pthread_create(&ob->thread, NULL, relay_main, ob) != 0)
    return ERR_INTERNAL;
  ob->started = true;
  return ERR_OK;
}

void outbox_kick(outbox *ob) {
  if (ob == NULL || atomic_exchange(&ob->kicked, true))
    return; /* a wake-up is pending already */
  pthread_mutex_lock(&ob->mu);
  pthread_cond_signal(&ob->cv);
  pthread_mutex_unlock(&ob->mu);
}

void outbox_free(outbox *ob) {
  if (ob == NULL) return;
  if (ob->started) {
    pthread_mutex_lock(&ob->mu);
    atomic_store(&ob->stop, true);
    pthread_cond_signal(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
    pthread_join(ob->thread, NULL);
  }
  pthread_cond_destroy(&ob->cv);
  pthread_mutex_destroy(&ob->mu);
  free(ob);
}

/* ----------------------------------------------------------- Replay --- */

typedef struct replay_args {
  const outbox *ob;
  uint64_t after;
  uint32_t limit;
  rows b;
  uint64_t last;
} replay_args;

static int replay_fn(db_conn *c, void *ud) {
  replay_args *a = ud;
  rows_free(&a->b); /* a retried attempt */
  a->last = 0;
  int rc = db_exec(c, SQL_RELAY_ON, NULL, 0, NULL);
  db_result *r = NULL;
  if (rc == ERR_OK) rc = db_exec(c, a->ob->q_bounds, NULL, 0, &r);
  int64_t lo = 0, hi = 0;
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? db_get_int64(r, 0, 0, &lo) : ERR_INTERNAL;
  if (rc == ERR_OK) rc = db_get_int64(r, 0, 1, &hi);
  db_result_free(r);
  r = NULL;
  if (rc != ERR_OK) return rc;
  a->last = (uint64_t)hi;
  if ((uint64_t)hi <= a->after) return ERR_OK;
  /* The rows left are a contiguous seq range [lo, hi] (outbox_prune
   * deletes prefixes): a gap before lo is gone for good. */
  if (a->after + 1 < (uint64_t)lo) return ERR_NOTFOUND;
  db_param ps[] = {db_int64((int64_t)a->after), db_int64(a->limit),
                   db_int64(FETCH_BYTES)};
  rc = db_exec(c, a->ob->q_replay, ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  return rows_load(a->ob, r, &a->b);
}

static void replay(void *arg, const rpc_call *call, rpc_reply *reply) {
  const outbox *ob = arg;
  Rpc__V1__ReplayRequest *req =
      rpc__v1__replay_request__unpack(NULL, call->payload_len, call->payload);
  if (req == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "undecodable request");
    return;
  }
  uint32_t limit = req->limit == 0 ? OUTBOX_REPLAY_DEFAULT : req->limit;
  if (limit > OUTBOX_REPLAY_MAX) limit = OUTBOX_REPLAY_MAX;
  replay_args a = {.ob = ob, .after = req->after_seq, .limit = limit};
  rpc__v1__replay_request__free_unpacked(req, NULL);
  if (a.after > (uint64_t)INT64_MAX)
    a.after = (uint64_t)INT64_MAX; /* past any seq: an empty answer */

  int64_t left = rpc_call_time_left_ms(call);
  db_tx_opts o = {.isolation = DB_REPEATABLE_READ, .read_only = true};
  o.statement_timeout_ms = left < 100 ? 100 : left > 30000 ? 30000 : (int)left;
  int rc = db_with_tx(ob->db, &o, DB_TX_RETRIES, replay_fn, &a);
  if (rc == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND,
                     "events after %" PRIu64 " were pruned", a.after);
    goto out;
  }
  if (rc != ERR_OK) {
    log_warn("outbox: Replay failed", "source", ob->source, "error",
             err_str(rc));
    rpc_reply_status(reply, rpc_code_from_err(rc), "cannot read events");
    goto out;
  }
  Rpc__V1__Event **ptrs = NULL;
  if (a.b.n > 0) {
    ptrs = calloc(a.b.n, sizeof *ptrs);
    if (ptrs == NULL) {
      rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < a.b.n; i++) ptrs[i] = &a.b.ev[i];
  }
  Rpc__V1__ReplayResponse resp = RPC__V1__REPLAY_RESPONSE__INIT;
  resp.n_events = a.b.n;
  resp.events = ptrs;
  resp.last_seq = a.last;
  if (rpc_reply_set_message(reply, &resp.base) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
  free(ptrs);
out:
  rows_free(&a.b);
}

int outbox_register_replay(outbox *ob, struct rpc_server *srv) {
  if (ob == NULL || srv == NULL) return ERR_INVAL;
  return rpc_server_register(srv, ob->method, replay, ob);
}
