/*
 * db.c - the connection pool, parameterised queries, transactions, results
 * and error mapping (see db.h).
 *
 * Design. The pool is a mutex, a condition variable (on the monotonic
 * clock, so a wall-clock step cannot stretch an acquire timeout) and a LIFO
 * list of idle connections: the most recently used connection is handed
 * out first, so a lightly loaded service keeps using one warm connection.
 * Connections are opened outside the lock (connecting can take seconds),
 * with the slot reserved first so the pool never exceeds max_conns.
 *
 * A db_conn wraps one PGconn and remembers whether the caller opened a
 * transaction (in_tx). That flag, not libpq's transaction status, decides
 * whether reconnecting is safe: libpq forgets the transaction when the
 * connection dies, and silently reconnecting would run the rest of the
 * caller's transaction as separate autocommit statements.
 *
 * Every query is prepared once per connection and then executed by name
 * with the values out of line (PQprepare/PQexecPrepared; see "prepared
 * statements" below); the only PQexec of a non-constant string is
 * db_conn_exec_script, used by the migration runner for trusted migration
 * files shipped with the service.
 *
 * Pipelines (db_exec_pipeline, db_exec_commit) send several statements
 * and read their results afterwards (libpq pipeline mode): one network
 * wait instead of one per statement. A transaction opened with
 * defer_begin keeps BEGIN and its settings in the db_conn until its
 * first statement, which carries them as the head of its pipeline.
 *
 * db_result is a PGresult in disguise (never dereferenced as anything
 * else), which keeps libpq out of db.h without an extra allocation.
 */
#include "libs/db/db.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <postgresql/libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/db/db_internal.h"

#define DEFAULT_MAX_CONNS 8
#define DEFAULT_ACQUIRE_MS 5000
#define DEFAULT_CONNECT_MS 5000
#define STACK_PARAMS 16

struct db_pool {
  char *conninfo;
  char *app_name; /* NULL when not configured */
  int max_conns;
  int acquire_timeout_ms;
  int connect_timeout_s;
  int statement_timeout_ms;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled when a connection or a slot frees up */
  db_conn *idle;     /* LIFO */
  int open;          /* idle + in use + being opened */
  int in_use;
  int waiting;
  uint64_t acquire_timeouts;
  uint64_t reconnects;
};

/* One prepared statement of a connection: the exact SQL text it was
 * prepared from (hash first, for a cheap miss) and its server-side name. */
typedef struct stmt {
  uint64_t hash;
  char *sql;
  int nparams;
  char name[16];
} stmt;

/* Prepared statements per connection; past it, statements run unnamed. */
#define STMT_CACHE_MAX 256

/* set_config pairs a transaction may set: tenant, timeout, role, and the
 * caller's settings. */
#define TX_SETTINGS_MAX (3 + DB_TX_SETTINGS_MAX)
#define TX_SETTINGS_SQL_MAX (64 + 40 * TX_SETTINGS_MAX)

/* A transaction's opening, held back until its first statement
 * (db_tx_opts.defer_begin): BEGIN and the set_config statement, with
 * copies of the values (the caller's opts need not outlive db_begin). */
typedef struct deferred_begin {
  bool pending;
  const char *begin;             /* a constant of begin_sql */
  char sql[TX_SETTINGS_SQL_MAX]; /* "" when there is nothing to set */
  char *vals[2 * TX_SETTINGS_MAX];
  int n;
} deferred_begin;

struct db_conn {
  db_pool *pool;
  PGconn *pg;
  stmt *stmts; /* prepared on this session (see stmt_find) */
  int nstmts, cap_stmts;
  unsigned next_stmt_id; /* names "s<N>", per session */
  bool in_tx;     /* the caller began a transaction and has not ended it */
  int tx_err;     /* first error inside the current transaction */
  bool discard;   /* close instead of pooling on release */
  bool committed; /* db_exec_commit ended the transaction (db_commit: OK) */
  deferred_begin deferred;
  db_conn *next; /* idle list */
};

static __thread db_error tl_err;

static PGresult *R(const db_result *r) { return (PGresult *)r; }

/* ---------------------------------------------------------------- errors ---
 */

int db_err_from_sqlstate(const char *s) {
  if (s == NULL || strlen(s) != 5) return ERR_DB;
  if (strcmp(s, "23505") == 0) return ERR_EXISTS;
  if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
      strcmp(s, "55P03") == 0)
    return ERR_CONFLICT;
  if (strcmp(s, "57014") == 0) return ERR_TIMEOUT;
  if (strncmp(s, "08", 2) == 0 || strcmp(s, "57P01") == 0 ||
      strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0 ||
      strcmp(s, "53300") == 0)
    return ERR_UNAVAILABLE;
  if (strncmp(s, "22", 2) == 0) return ERR_INVAL;
  return ERR_DB;
}

void db_scrub_message(const char *in, bool from_server, char *out, size_t cap) {
  if (cap == 0) return;
  size_t k = 0;
  for (size_t i = 0; in != NULL && in[i] != '\0' && k + 1 < cap; i++) {
    char ch = in[i];
    if (ch == '\n' || ch == '\r') break; /* later lines: hints and detail */
    /* PostgreSQL puts the offending value after ": " ("invalid input syntax
     * for type uuid: \"...\""); the part before it names the problem. */
    if (from_server && ch == ':' && in[i + 1] == ' ') break;
    out[k++] = (ch >= 0x20 && ch <= 0x7e) ? ch : '?';
  }
  while (k > 0 && out[k - 1] == ' ') k--;
  out[k] = '\0';
}

int db_set_error(int code, const char *sqlstate, const char *message) {
  tl_err.code = code;
  str_copy(tl_err.sqlstate, sqlstate != NULL ? sqlstate : "",
           sizeof tl_err.sqlstate);
  str_copy(tl_err.message, message != NULL ? message : err_str(code),
           sizeof tl_err.message);
  tl_err.constraint[0] = '\0';
  return code;
}

void db_prefix_error(const char *prefix) {
  char buf[2 * sizeof tl_err.message]; /* cut back to size below */
  snprintf(buf, sizeof buf, "%.200s: %s", prefix, tl_err.message);
  str_copy(tl_err.message, buf, sizeof tl_err.message);
}

const db_error *db_last_error(void) { return &tl_err; }

/* Maps a failed result (or NULL: out of memory / connection gone) to an
 * ERR_* code and records the details for db_last_error. */
static int result_error(PGconn *pg, PGresult *res) {
  const char *state =
      res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary =
      res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *constraint =
      res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  int code;
  if (PQstatus(pg) == CONNECTION_BAD)
    code = ERR_UNAVAILABLE;
  else if (state == NULL && res == NULL)
    code = ERR_NOMEM;
  else
    code = db_err_from_sqlstate(state);
  char msg[sizeof tl_err.message];
  if (primary != NULL && state != NULL)
    db_scrub_message(primary, true, msg, sizeof msg);
  else
    db_scrub_message(res != NULL ? PQresultErrorMessage(res)
                                 : PQerrorMessage(pg),
                     false, msg, sizeof msg);
  if (msg[0] == '\0') str_copy(msg, err_str(code), sizeof msg);
  db_set_error(code, state, msg);
  if (constraint != NULL)
    str_copy(tl_err.constraint, constraint, sizeof tl_err.constraint);
  return code;
}

/* ----------------------------------------------------------- connections ---
 */

static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* Opens c->pg; on failure c->pg is NULL. */
static int conn_open(db_conn *c) {
  db_pool *p = c->pool;
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%d", p->connect_timeout_s);
  /* Later entries win; the conninfo ("dbname", expanded) may override the
   * connect_timeout default, the configured application_name wins. */
  const char *keys[4], *vals[4];
  int n = 0;
  keys[n] = "connect_timeout", vals[n++] = timeout;
  keys[n] = "dbname", vals[n++] = p->conninfo;
  if (p->app_name != NULL)
    keys[n] = "application_name", vals[n++] = p->app_name;
  keys[n] = NULL, vals[n] = NULL;
  c->pg = PQconnectdbParams(keys, vals, 1);
  if (c->pg == NULL) return db_set_error(ERR_NOMEM, NULL, NULL);
  /* Notices (e.g. "already exists, skipping") are not errors; libpq would
   * print them on stderr, which in a service is the structured log. */
  PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
  if (PQstatus(c->pg) != CONNECTION_OK) {
    char msg[sizeof tl_err.message];
    db_scrub_message(PQerrorMessage(c->pg), false, msg, sizeof msg);
    PQfinish(c->pg);
    c->pg = NULL;
    return db_set_error(ERR_UNAVAILABLE, NULL, msg);
  }
  if (p->statement_timeout_ms > 0) {
    char ms[16];
    snprintf(ms, sizeof ms, "%d", p->statement_timeout_ms);
    const char *v[1] = {ms};
    PGresult *res =
        PQexecParams(c->pg, "SELECT set_config('statement_timeout', $1, false)",
                     1, NULL, v, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? ERR_OK
                                                    : result_error(c->pg, res);
    PQclear(res);
    if (rc != ERR_OK) {
      PQfinish(c->pg);
      c->pg = NULL;
      return rc;
    }
  }
  return ERR_OK;
}

/* Forgets every prepared statement (a new session has none). */
static void stmts_forget(db_conn *c) {
  for (int i = 0; i < c->nstmts; i++) free(c->stmts[i].sql);
  c->nstmts = 0;
  c->next_stmt_id = 0;
}

static void deferred_clear(deferred_begin *d);

static void conn_free(db_conn *c) {
  deferred_clear(&c->deferred);
  PQfinish(c->pg);
  stmts_forget(c);
  free(c->stmts);
  free(c);
}

/* Replaces a dead connection in place. Only called when no transaction is
 * open, so nothing the caller expects is lost. */
static int conn_reconnect(db_conn *c) {
  PQfinish(c->pg);
  c->pg = NULL;
  stmts_forget(c);
  pthread_mutex_lock(&c->pool->mu);
  c->pool->reconnects++;
  pthread_mutex_unlock(&c->pool->mu);
  return conn_open(c);
}

/* An idle connection is fine unless libpq already knows it is bad or the
 * server sent something while we were not asking: a backend that was
 * terminated or a server shutting down sends a FATAL error and closes.
 * Reading that input makes libpq notice the close. No round trip. */
static bool conn_idle_ok(PGconn *pg) {
  for (int i = 0; i < 4; i++) {
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK ||
        PQtransactionStatus(pg) != PQTRANS_IDLE)
      return false;
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
    if (poll(&pfd, 1, 0) <= 0) return true; /* nothing pending */
    if (!PQconsumeInput(pg)) return false;
    PGnotify *note;
    while ((note = PQnotifies(pg)) != NULL) PQfreemem(note);
  }
  return PQstatus(pg) == CONNECTION_OK;
}

/* ------------------------------------------------------------------ pool ---
 */

int db_pool_new(const db_config *cfg, db_pool **out) {
  *out = NULL;
  if (cfg == NULL || cfg->conninfo == NULL || cfg->max_conns < 0 ||
      cfg->acquire_timeout_ms < 0 || cfg->connect_timeout_ms < 0 ||
      cfg->statement_timeout_ms < 0)
    return db_set_error(ERR_INVAL, NULL, "invalid pool configuration");
  db_pool *p = calloc(1, sizeof *p);
  if (p == NULL) return db_set_error(ERR_NOMEM, NULL, NULL);
  p->conninfo = strdup(cfg->conninfo);
  p->app_name =
      cfg->application_name != NULL ? strdup(cfg->application_name) : NULL;
  if (p->conninfo == NULL ||
      (cfg->application_name != NULL && p->app_name == NULL))
    goto nomem;
  p->max_conns = cfg->max_conns > 0 ? cfg->max_conns : DEFAULT_MAX_CONNS;
  p->acquire_timeout_ms = cfg->acquire_timeout_ms > 0 ? cfg->acquire_timeout_ms
                                                      : DEFAULT_ACQUIRE_MS;
  int connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
                                               : DEFAULT_CONNECT_MS;
  p->connect_timeout_s = (connect_ms + 999) / 1000;
  if (p->connect_timeout_s < 2) p->connect_timeout_s = 2; /* libpq's minimum */
  p->statement_timeout_ms = cfg->statement_timeout_ms;

  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&p->mu, NULL);
  *out = p;
  return ERR_OK;
nomem:
  free(p->conninfo);
  free(p->app_name);
  free(p);
  return db_set_error(ERR_NOMEM, NULL, NULL);
}

void db_pool_free(db_pool *p) {
  if (p == NULL) return;
  db_conn *c = p->idle;
  while (c != NULL) {
    db_conn *next = c->next;
    conn_free(c);
    c = next;
  }
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->conninfo);
  free(p->app_name);
  free(p);
}

/* Gives a slot back after a connection was closed or never opened. */
static void slot_free(db_pool *p) {
  pthread_mutex_lock(&p->mu);
  p->open--;
  p->in_use--;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

int db_acquire(db_pool *p, db_conn **out) {
  *out = NULL;
  if (p == NULL) return db_set_error(ERR_INVAL, NULL, "no pool");
  int64_t deadline_ms = time_mono_ms() + p->acquire_timeout_ms;
  db_conn *c = NULL;
  bool fresh = false;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->idle != NULL) {
      c = p->idle;
      p->idle = c->next;
      c->next = NULL;
      p->in_use++;
      break;
    }
    if (p->open < p->max_conns) {
      p->open++;
      p->in_use++;
      fresh = true;
      break;
    }
    int64_t now = time_mono_ms();
    if (now >= deadline_ms) {
      p->acquire_timeouts++;
      pthread_mutex_unlock(&p->mu);
      char msg[96];
      snprintf(msg, sizeof msg, "no free database connection within %d ms",
               p->acquire_timeout_ms);
      return db_set_error(ERR_TIMEOUT, NULL, msg);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = deadline_ms - now;
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    p->waiting++;
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    p->waiting--;
  }
  pthread_mutex_unlock(&p->mu);

  int rc = ERR_OK;
  if (fresh) {
    c = calloc(1, sizeof *c);
    if (c == NULL) {
      slot_free(p);
      return db_set_error(ERR_NOMEM, NULL, NULL);
    }
    c->pool = p;
    rc = conn_open(c);
  } else if (!conn_idle_ok(c->pg)) {
    rc = conn_reconnect(c);
  }
  if (rc != ERR_OK) {
    conn_free(c);
    slot_free(p);
    return rc;
  }
  c->in_tx = false;
  c->tx_err = ERR_OK;
  c->discard = false;
  c->committed = false;
  deferred_clear(&c->deferred);
  *out = c;
  return ERR_OK;
}

void db_release(db_conn *c) {
  if (c == NULL) return;
  db_pool *p = c->pool;
  bool keep = !c->discard && c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
  if (c->deferred.pending) { /* BEGIN never sent: nothing to undo */
    deferred_clear(&c->deferred);
    c->in_tx = false;
  }
  if (keep && (c->in_tx || PQtransactionStatus(c->pg) != PQTRANS_IDLE)) {
    PGresult *res = PQexec(c->pg, "ROLLBACK");
    keep = PQresultStatus(res) == PGRES_COMMAND_OK &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    PQclear(res);
  }
  c->in_tx = false;
  if (!keep) {
    conn_free(c);
    slot_free(p);
    return;
  }
  pthread_mutex_lock(&p->mu);
  c->next = p->idle;
  p->idle = c;
  p->in_use--;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

int db_ping(db_pool *p) {
  db_conn *c = NULL;
  int rc = db_acquire(p, &c);
  if (rc != ERR_OK) return rc;
  rc = db_exec(c, "SELECT 1", NULL, 0, NULL);
  db_release(c);
  return rc;
}

void db_pool_get_stats(db_pool *p, db_pool_stats *out) {
  memset(out, 0, sizeof *out);
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  out->open = p->open;
  out->in_use = p->in_use;
  out->waiting = p->waiting;
  out->acquire_timeouts = p->acquire_timeouts;
  out->reconnects = p->reconnects;
  pthread_mutex_unlock(&p->mu);
}

void db_conn_discard(db_conn *c) { c->discard = true; }

/* ------------------------------------------------------------ parameters ---
 */

db_param db_text(const char *s) {
  db_param p = {.kind = s != NULL ? DB_P_TEXT : DB_P_NULL, .data = s};
  return p;
}

db_param db_bytes(const void *data, size_t len) {
  db_param p = {
      .kind = DB_P_BINARY, .data = data != NULL ? data : "", .len = (int)len};
  return p;
}

db_param db_int64(int64_t v) {
  db_param p = {.kind = DB_P_INLINE};
  snprintf(p.inline_text, sizeof p.inline_text, "%" PRId64, v);
  return p;
}

db_param db_bool(bool v) {
  db_param p = {.kind = DB_P_INLINE};
  str_copy(p.inline_text, v ? "true" : "false", sizeof p.inline_text);
  return p;
}

db_param db_null(void) {
  db_param p = {.kind = DB_P_NULL};
  return p;
}

/* --------------------------------------------------------------- queries ---
 */

/* Makes sure c has a live connection before a statement: reconnects when
 * it is dead and no transaction is open; fails inside a transaction. */
static int conn_ready(db_conn *c) {
  if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK) return ERR_OK;
  if (c->in_tx && !c->deferred.pending)
    return db_set_error(ERR_UNAVAILABLE, NULL,
                        "connection lost inside a transaction");
  return conn_reconnect(c);
}

/* Runs sql once; *res gets the result on success. */
/* ------------------------------------------------- prepared statements ---
 *
 * Every statement a connection runs is prepared once on its session
 * (PQprepare, named "s<N>") and executed by name afterwards
 * (PQexecPrepared): the server parses, analyses and rewrites it once per
 * connection instead of on every call, which is most of a short query's
 * cost (the orders benchmark: pgbench -M prepared vs -M extended). The
 * key is the exact SQL text, so a statement built at run time (an
 * identifier validated and pasted once, the set_config list of a
 * transaction) is as cacheable as a literal. Plans stay correct without
 * our help: PostgreSQL re-plans a prepared statement when a table it uses
 * changes or when it depends on row-level security and the role changed.
 * What it cannot do is change a statement's result columns (SQLSTATE
 * 0A000 after a migration changed a table read with "*"): the entry is
 * then dropped so the next call prepares again. A new session (connect,
 * reconnect) starts with an empty cache; past STMT_CACHE_MAX entries a
 * connection runs further statements unnamed, as before. */

static uint64_t sql_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s != '\0'; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static stmt *stmt_find(db_conn *c, const char *sql, uint64_t h, int n) {
  for (int i = 0; i < c->nstmts; i++)
    if (c->stmts[i].hash == h && c->stmts[i].nparams == n &&
        strcmp(c->stmts[i].sql, sql) == 0)
      return &c->stmts[i];
  return NULL;
}

static void stmt_drop(db_conn *c, stmt *st) {
  free(st->sql);
  *st = c->stmts[--c->nstmts];
}

/* Prepares sql on c's session. Returns the entry, or NULL with *res set to
 * the failed PGresult (a syntax error, an aborted transaction, ...) or
 * NULL when the statement should simply run unnamed (cache full, out of
 * memory). */
/* A new entry for sql, named but not yet prepared on the server: its
 * index, or -1 when the statement should simply run unnamed (cache full,
 * out of memory). The caller prepares it or drops it. */
static int stmt_add(db_conn *c, const char *sql, uint64_t h, int n) {
  if (c->nstmts >= STMT_CACHE_MAX) return -1;
  if (c->nstmts == c->cap_stmts) {
    int cap = c->cap_stmts ? 2 * c->cap_stmts : 16;
    stmt *grown = realloc(c->stmts, (size_t)cap * sizeof *grown);
    if (grown == NULL) return -1;
    c->stmts = grown;
    c->cap_stmts = cap;
  }
  stmt *st = &c->stmts[c->nstmts];
  st->sql = strdup(sql);
  if (st->sql == NULL) return -1;
  st->hash = h;
  st->nparams = n;
  /* Names are unique within the session by construction (a counter that
   * starts again with each session), so a Parse never fails on a name:
   * inside a transaction that failure would abort it. */
  snprintf(st->name, sizeof st->name, "s%u", c->next_stmt_id++);
  return c->nstmts++;
}

static stmt *stmt_prepare(db_conn *c, const char *sql, uint64_t h, int n,
                          PGresult **res) {
  *res = NULL;
  int i = stmt_add(c, sql, h, n);
  if (i < 0) return NULL;
  PGresult *r = PQprepare(c->pg, c->stmts[i].name, sql, n, NULL);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    stmt_drop(c, &c->stmts[i]); /* the last entry */
    *res = r;
    return NULL;
  }
  PQclear(r);
  return &c->stmts[i];
}

/* Parameters as libpq takes them: on the stack up to STACK_PARAMS. */
typedef struct lp_params {
  const char **vals;
  int *lens, *fmts;
  const char *stack_vals[STACK_PARAMS];
  int stack_lens[STACK_PARAMS], stack_fmts[STACK_PARAMS];
} lp_params;

static void lp_params_free(lp_params *lp) {
  if (lp->vals != lp->stack_vals) {
    free(lp->vals);
    free(lp->lens);
    free(lp->fmts);
  }
}

static int lp_params_init(lp_params *lp, const db_param *params, int n) {
  lp->vals = lp->stack_vals;
  lp->lens = lp->stack_lens;
  lp->fmts = lp->stack_fmts;
  if (n > STACK_PARAMS) {
    lp->vals = calloc((size_t)n, sizeof *lp->vals);
    lp->lens = calloc((size_t)n, sizeof *lp->lens);
    lp->fmts = calloc((size_t)n, sizeof *lp->fmts);
    if (lp->vals == NULL || lp->lens == NULL || lp->fmts == NULL) {
      lp_params_free(lp);
      return db_set_error(ERR_NOMEM, NULL, NULL);
    }
  }
  for (int i = 0; i < n; i++) {
    const db_param *p = &params[i];
    lp->lens[i] = 0;
    lp->fmts[i] = 0;
    switch (p->kind) {
    case DB_P_TEXT:
      lp->vals[i] = p->data;
      break;
    case DB_P_BINARY:
      lp->vals[i] = p->data;
      lp->lens[i] = p->len;
      lp->fmts[i] = 1;
      break;
    case DB_P_INLINE:
      lp->vals[i] = p->inline_text;
      break;
    case DB_P_NULL:
    default:
      lp->vals[i] = NULL;
      break;
    }
  }
  return ERR_OK;
}

static int run(db_conn *c, const char *sql, const db_param *params, int n,
               PGresult **res) {
  *res = NULL;
  lp_params lp;
  int rc = lp_params_init(&lp, params, n);
  if (rc != ERR_OK) return rc;
  const char **vals = lp.vals;
  int *lens = lp.lens, *fmts = lp.fmts;
  uint64_t h = sql_hash(sql);
  PGresult *r = NULL;
  stmt *prep = stmt_find(c, sql, h, n);
  if (prep == NULL) prep = stmt_prepare(c, sql, h, n, &r);
  if (prep != NULL)
    r = PQexecPrepared(c->pg, prep->name, n, vals, lens, fmts, 0);
  else if (r == NULL)
    r = PQexecParams(c->pg, sql, n, NULL, vals, lens, fmts, 0);
  if (prep != NULL && PQresultStatus(r) == PGRES_FATAL_ERROR) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    /* 0A000: "cached plan must not change result type" (a migration
     * changed a table this statement reads); 26000: the session lost it.
     * Prepare again next time. */
    if (state != NULL &&
        (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0)) {
      if (strcmp(state, "0A000") == 0 &&
          PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        char dealloc[40];
        snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", prep->name);
        PQclear(PQexec(c->pg, dealloc));
      }
      stmt_drop(c, prep);
      if (!c->in_tx && PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        /* Outside a transaction nothing was done: run it again now. */
        PQclear(r);
        r = PQexecParams(c->pg, sql, n, NULL, vals, lens, fmts, 0);
      }
    }
  }
  lp_params_free(&lp);
  ExecStatusType st = PQresultStatus(r);
  if (r != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
    *res = r;
    return ERR_OK;
  }
  if (r != NULL &&
      (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)) {
    c->discard = true; /* mid-COPY: the connection is unusable for us */
    rc = db_set_error(ERR_INVAL, NULL, "COPY is not supported");
  } else {
    rc = result_error(c->pg, r);
  }
  PQclear(r);
  return rc;
}

int db_exec(db_conn *c, const char *sql, const db_param *params, int nparams,
            db_result **out) {
  if (out != NULL) *out = NULL;
  if (c == NULL || sql == NULL || nparams < 0 ||
      (nparams > 0 && params == NULL))
    return db_set_error(ERR_INVAL, NULL, "invalid db_exec arguments");
  if (c->deferred.pending) {
    db_stmt one = {.sql = sql, .params = params, .nparams = nparams};
    return db_exec_pipeline(c, &one, 1, out);
  }
  int rc = conn_ready(c);
  PGresult *res = NULL;
  if (rc == ERR_OK) rc = run(c, sql, params, nparams, &res);
  if (rc != ERR_OK) {
    if (c->in_tx && c->tx_err == ERR_OK) c->tx_err = rc;
    return rc;
  }
  if (out != NULL)
    *out = (db_result *)res;
  else
    PQclear(res);
  return ERR_OK;
}

int db_conn_exec_script(db_conn *c, const char *sql) {
  int rc = conn_ready(c);
  if (rc != ERR_OK) return rc;
  /* Trusted text only (migration files shipped with the service): PQexec
   * runs several statements at once, which PQexecParams cannot. */
  PGresult *res = PQexec(c->pg, sql);
  ExecStatusType st = PQresultStatus(res);
  rc = (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
                        st == PGRES_EMPTY_QUERY))
           ? ERR_OK
           : result_error(c->pg, res);
  PQclear(res);
  if (rc != ERR_OK && c->in_tx && c->tx_err == ERR_OK) c->tx_err = rc;
  return rc;
}

/* ------------------------------------------------------------- pipelines ---
 *
 * A pipeline is a list of commands sent before any result is read: per
 * statement a Parse (PQsendPrepare) when this session has not prepared it
 * yet, then its execution by name (or unnamed when the cache is full);
 * then one Sync. Results come back in that order, each followed by a
 * NULL, then the Sync's PGRES_PIPELINE_SYNC; after the first failure
 * every later command reports PGRES_PIPELINE_ABORTED. A cache entry made
 * for this pipeline is kept only when its Parse succeeded (a skipped
 * Parse created nothing on the server). A deferred BEGIN and its
 * set_config go first, a COMMIT last (db_exec_commit). */

#define PIPE_STMTS_MAX (DB_PIPELINE_MAX + 3) /* + BEGIN, settings, COMMIT */
#define PIPE_CMDS_MAX (2 * PIPE_STMTS_MAX)

typedef struct pipe_cmd {
  int stmt;   /* index of its statement in the pipeline */
  int entry;  /* its cache entry (c->stmts), or -1 when run unnamed */
  bool parse; /* the Parse of entry, sent in this pipeline */
} pipe_cmd;

typedef struct pipe_run {
  db_conn *c;
  db_stmt v[PIPE_STMTS_MAX];
  size_t n;
  pipe_cmd cmd[PIPE_CMDS_MAX];
  int ncmd;
  PGresult *res[PIPE_STMTS_MAX]; /* each statement's result */
  int drop[PIPE_CMDS_MAX];       /* cache entries to forget */
  int ndrop;
  int rc; /* the first failure */
} pipe_run;

static void pipe_fail(pipe_run *p, int rc) {
  if (p->rc == ERR_OK) p->rc = rc;
}

/* Sends statement i: its Parse if needed, then its execution. */
static bool pipe_send(pipe_run *p, int i) {
  db_conn *c = p->c;
  const db_stmt *s = &p->v[i];
  uint64_t h = sql_hash(s->sql);
  stmt *found = stmt_find(c, s->sql, h, s->nparams);
  int e = found != NULL ? (int)(found - c->stmts) : -1;
  if (e < 0 && (e = stmt_add(c, s->sql, h, s->nparams)) >= 0) {
    p->cmd[p->ncmd++] = (pipe_cmd){.stmt = i, .entry = e, .parse = true};
    if (!PQsendPrepare(c->pg, c->stmts[e].name, s->sql, s->nparams, NULL))
      return false;
  }
  lp_params lp;
  if (lp_params_init(&lp, s->params, s->nparams) != ERR_OK) return false;
  p->cmd[p->ncmd++] = (pipe_cmd){.stmt = i, .entry = e, .parse = false};
  int ok = e >= 0 ? PQsendQueryPrepared(c->pg, c->stmts[e].name, s->nparams,
                                        lp.vals, lp.lens, lp.fmts, 0)
                  : PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, lp.vals,
                                      lp.lens, lp.fmts, 0);
  lp_params_free(&lp);
  return ok == 1;
}

/* Judges one command's result (taken). */
static void pipe_take(pipe_run *p, const pipe_cmd *k, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (k->parse)
      PQclear(r);
    else
      p->res[k->stmt] = r;
    return;
  }
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  /* As run(): a statement the server can no longer use (0A000, 26000) is
   * prepared again next time. */
  bool stale = state != NULL &&
               (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0);
  if (k->entry >= 0 && (k->parse || stale)) p->drop[p->ndrop++] = k->entry;
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
    p->c->discard = true;
    pipe_fail(p, db_set_error(ERR_INVAL, NULL, "COPY is not supported"));
  } else if (st != PGRES_PIPELINE_ABORTED && p->rc == ERR_OK) {
    pipe_fail(p, result_error(p->c->pg, r));
  }
  PQclear(r);
}

/* Reads every command's result and the Sync. False when the connection
 * broke on the way (p->rc says how). */
static bool pipe_read(pipe_run *p) {
  PGconn *pg = p->c->pg;
  for (int i = 0; i < p->ncmd; i++) {
    PGresult *r = PQgetResult(pg);
    if (r == NULL) {
      pipe_fail(p, result_error(pg, NULL));
      return false;
    }
    pipe_take(p, &p->cmd[i], r);
    while ((r = PQgetResult(pg)) != NULL) PQclear(r); /* end of command */
    if (PQstatus(pg) == CONNECTION_BAD) {
      pipe_fail(p, result_error(pg, NULL));
      return false;
    }
  }
  PGresult *r = PQgetResult(pg);
  bool synced = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
  PQclear(r);
  if (!synced) pipe_fail(p, result_error(pg, NULL));
  return synced;
}

/* Forgets the entries in p->drop, highest index first (stmt_drop moves
 * the last entry into the hole, which is then never a pending one). */
static void pipe_forget(pipe_run *p) {
  for (int i = 1; i < p->ndrop; i++)
    for (int j = i; j > 0 && p->drop[j - 1] < p->drop[j]; j--) {
      int t = p->drop[j];
      p->drop[j] = p->drop[j - 1];
      p->drop[j - 1] = t;
    }
  for (int i = 0; i < p->ndrop; i++)
    if (i == 0 || p->drop[i] != p->drop[i - 1])
      stmt_drop(p->c, &p->c->stmts[p->drop[i]]);
}

/* Sends p->v in one pipeline and reads the results into p->res. */
static void pipe_exec(pipe_run *p) {
  PGconn *pg = p->c->pg;
  if (!PQenterPipelineMode(pg)) {
    pipe_fail(p, result_error(pg, NULL));
    return;
  }
  bool sent = true;
  for (size_t i = 0; i < p->n && sent; i++) sent = pipe_send(p, (int)i);
  sent = sent && PQpipelineSync(pg) == 1;
  bool read = sent && pipe_read(p);
  if (!sent) pipe_fail(p, result_error(pg, NULL));
  if (!read || !PQexitPipelineMode(pg)) {
    /* Results left unread: the session cannot be trusted again. */
    p->c->discard = true;
    p->ndrop = 0;
    for (int i = 0; i < p->ncmd; i++)
      if (p->cmd[i].parse) p->drop[p->ndrop++] = p->cmd[i].entry;
  }
  pipe_forget(p);
}

/* The statements of one round trip: a deferred opening, v, a COMMIT. */
static void pipe_build(pipe_run *p, const db_stmt *v, size_t n, bool commit) {
  static const db_stmt commit_stmt = {.sql = "COMMIT"};
  const deferred_begin *d = &p->c->deferred;
  if (d->pending) {
    p->v[p->n++] = (db_stmt){.sql = d->begin};
    if (d->sql[0] != '\0') p->v[p->n++] = (db_stmt){.sql = d->sql};
  }
  for (size_t i = 0; i < n; i++) p->v[p->n++] = v[i];
  if (commit) p->v[p->n++] = commit_stmt;
}

/* Refused before anything is sent (a deferred opening stays pending). */
static int pipe_check(const db_conn *c, const db_stmt *v, size_t n,
                      bool commit) {
  if (c == NULL || v == NULL || n == 0 || n > DB_PIPELINE_MAX)
    return db_set_error(ERR_INVAL, NULL, "invalid pipeline");
  if (commit && !c->in_tx)
    return db_set_error(ERR_INVAL, NULL, "no transaction open");
  for (size_t i = 0; i < n; i++)
    if (v[i].sql == NULL || v[i].nparams < 0 ||
        (v[i].nparams > 0 && v[i].params == NULL))
      return db_set_error(ERR_INVAL, NULL, "invalid pipeline statement");
  return ERR_OK;
}

/* The deferred set_config's values as parameters (p->v[1] borrows them). */
static void pipe_settings(pipe_run *p, db_param *ps) {
  const deferred_begin *d = &p->c->deferred;
  if (!d->pending || d->sql[0] == '\0') return;
  for (int i = 0; i < d->n; i++) ps[i] = db_text(d->vals[i]);
  p->v[1].params = ps;
  p->v[1].nparams = d->n;
}

/* One try of a pipeline; *p is reset first. */
static int pipe_try(pipe_run *p, db_conn *c, const db_stmt *v, size_t n,
                    bool commit) {
  memset(p, 0, sizeof *p);
  p->c = c;
  db_param ps[2 * TX_SETTINGS_MAX];
  pipe_build(p, v, n, commit);
  pipe_settings(p, ps);
  int rc = conn_ready(c);
  if (rc != ERR_OK) return rc;
  pipe_exec(p);
  return p->rc;
}

static int pipeline(db_conn *c, const db_stmt *v, size_t n, bool commit,
                    db_result **out) {
  if (out != NULL)
    for (size_t i = 0; i < n && i <= DB_PIPELINE_MAX; i++) out[i] = NULL;
  int rc = pipe_check(c, v, n, commit);
  if (rc != ERR_OK) return rc;
  pipe_run *p = malloc(sizeof *p);
  if (p == NULL) return db_set_error(ERR_NOMEM, NULL, NULL);
  bool opening = c->deferred.pending;
  rc = pipe_try(p, c, v, n, commit);
  if (rc == ERR_UNAVAILABLE && opening && !commit) {
    /* The connection died under the transaction's first round trip,
     * which holds no COMMIT: the server rolled it back, so it can be sent
     * again once on a fresh connection (as db_begin_opts does). */
    for (size_t i = 0; i < p->n; i++) PQclear(p->res[i]);
    rc = conn_reconnect(c);
    c->discard = false; /* a fresh session */
    if (rc == ERR_OK) rc = pipe_try(p, c, v, n, commit);
  }
  deferred_clear(&c->deferred); /* sent, or spoilt with the transaction */
  size_t first = p->n - n - (commit ? 1 : 0); /* v[0]'s place in p->v */
  for (size_t i = 0; i < p->n; i++) {
    bool mine = rc == ERR_OK && out != NULL && i >= first && i < first + n;
    if (mine)
      out[i - first] = (db_result *)p->res[i];
    else
      PQclear(p->res[i]);
  }
  free(p);
  if (rc != ERR_OK && c->in_tx && c->tx_err == ERR_OK) c->tx_err = rc;
  return rc;
}

int db_exec_pipeline(db_conn *c, const db_stmt *v, size_t n, db_result **out) {
  return pipeline(c, v, n, false, out);
}

int db_exec_commit(db_conn *c, const db_stmt *v, size_t n, db_result **out) {
  int rc = pipeline(c, v, n, true, out);
  if (rc != ERR_OK) {
    db_error saved = tl_err; /* the failing statement's details */
    (void)db_rollback(c);
    tl_err = saved;
    return rc;
  }
  c->in_tx = false;
  c->tx_err = ERR_OK;
  c->committed = true;
  return ERR_OK;
}

/* ---------------------------------------------------------- transactions ---
 */

static const char *begin_sql(const db_tx_opts *o) {
  /* Constant statements only: nothing from the caller reaches the SQL. */
  static const char *const sql[3][2] = {
      {"BEGIN ISOLATION LEVEL READ COMMITTED",
       "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"},
      {"BEGIN ISOLATION LEVEL REPEATABLE READ",
       "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
      {"BEGIN ISOLATION LEVEL SERIALIZABLE",
       "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"},
  };
  int iso =
      (o->isolation >= DB_READ_COMMITTED && o->isolation <= DB_SERIALIZABLE)
          ? (int)o->isolation
          : 0;
  return sql[iso][o->read_only ? 1 : 0];
}

bool db_ident_ok(const char *s) {
  if (s == NULL || s[0] == '\0' || strnlen(s, 64) > 63) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
  for (const char *p = s; *p != '\0'; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return false;
  return true;
}

/* The options a caller got wrong are refused before BEGIN is sent. */
static int check_opts(const db_tx_opts *o) {
  if (o->role != NULL && o->role[0] != '\0' && !db_ident_ok(o->role))
    return db_set_error(ERR_INVAL, NULL, "invalid role name");
  if (o->nsettings > DB_TX_SETTINGS_MAX)
    return db_set_error(ERR_INVAL, NULL, "too many settings");
  if (o->nsettings > 0 && o->settings == NULL)
    return db_set_error(ERR_INVAL, NULL, "settings missing");
  for (size_t i = 0; i < o->nsettings; i++) {
    const db_setting *st = &o->settings[i];
    if (st->name == NULL || strchr(st->name, '.') == NULL || st->value == NULL)
      return db_set_error(ERR_INVAL, NULL, "invalid setting");
  }
  return ERR_OK;
}

/* Everything after BEGIN in one round trip: one parameterised
 * "SELECT set_config($1, $2, true), set_config($3, $4, true), ..." for the
 * tenant, the statement timeout, the role and the settings (every request
 * transaction pays this, so one statement rather than one per setting).
 * Fills sql (TX_SETTINGS_SQL_MAX bytes; "" when there is nothing to set)
 * and ps (2 * TX_SETTINGS_MAX, borrowing o's strings and timeout, 24
 * bytes); returns the number of parameters. */
#define TX_TIMEOUT_TEXT 24
static int settings_stmt(const db_tx_opts *o, char *sql, db_param *ps,
                         char *timeout) {
  int n = 0;
  if (o->tenant_id != NULL) {
    ps[n++] = db_text("app.tenant_id");
    ps[n++] = db_text(o->tenant_id);
  }
  if (o->statement_timeout_ms > 0) {
    snprintf(timeout, TX_TIMEOUT_TEXT, "%d", o->statement_timeout_ms);
    ps[n++] = db_text("statement_timeout");
    ps[n++] = db_text(timeout);
  }
  if (o->role != NULL && o->role[0] != '\0') {
    ps[n++] = db_text("role");
    ps[n++] = db_text(o->role);
  }
  for (size_t i = 0; i < o->nsettings; i++) {
    ps[n++] = db_text(o->settings[i].name);
    ps[n++] = db_text(o->settings[i].value);
  }
  sql[0] = '\0';
  if (n == 0) return 0;
  size_t used = (size_t)snprintf(sql, TX_SETTINGS_SQL_MAX, "SELECT ");
  for (int i = 0; i < n; i += 2)
    used += (size_t)snprintf(sql + used, TX_SETTINGS_SQL_MAX - used,
                             "%sset_config($%d, $%d, true)", i ? ", " : "",
                             i + 1, i + 2);
  return n;
}

static int apply_opts(db_conn *c, const db_tx_opts *o) {
  db_param ps[2 * TX_SETTINGS_MAX];
  char timeout[TX_TIMEOUT_TEXT], sql[TX_SETTINGS_SQL_MAX];
  int n = settings_stmt(o, sql, ps, timeout);
  return n == 0 ? ERR_OK : db_exec(c, sql, ps, n, NULL);
}

static void deferred_clear(deferred_begin *d) {
  for (int i = 0; i < d->n; i++) free(d->vals[i]);
  memset(d, 0, sizeof *d);
}

/* Holds the transaction's opening back for its first statement. */
static int defer_begin(db_conn *c, const db_tx_opts *o) {
  deferred_begin *d = &c->deferred;
  deferred_clear(d);
  db_param ps[2 * TX_SETTINGS_MAX];
  char timeout[TX_TIMEOUT_TEXT];
  int n = settings_stmt(o, d->sql, ps, timeout);
  for (int i = 0; i < n; i++) {
    d->vals[i] = strdup(ps[i].data); /* names and values: never NULL */
    d->n = i + 1;
    if (d->vals[i] == NULL) {
      deferred_clear(d);
      return db_set_error(ERR_NOMEM, NULL, NULL);
    }
  }
  d->begin = begin_sql(o);
  d->pending = true;
  return ERR_OK;
}

int db_begin_opts(db_conn *c, const db_tx_opts *opts) {
  static const db_tx_opts none = {0};
  if (opts == NULL) opts = &none;
  int rc = check_opts(opts);
  if (rc != ERR_OK) return rc;
  if (c == NULL) return db_set_error(ERR_INVAL, NULL, "no connection");
  if (c->in_tx)
    return db_set_error(ERR_INVAL, NULL, "a transaction is already open");
  c->committed = false;
  if (opts->defer_begin) {
    rc = defer_begin(c, opts);
    if (rc != ERR_OK) return rc;
    c->in_tx = true;
    c->tx_err = ERR_OK;
    return ERR_OK;
  }
  rc = db_exec(c, begin_sql(opts), NULL, 0, NULL);
  if (rc == ERR_UNAVAILABLE) {
    /* Died before BEGIN ran anything (e.g. a server restart that left no
     * trace on the idle socket yet): safe to reconnect and try once more. */
    rc = conn_reconnect(c);
    if (rc == ERR_OK) rc = db_exec(c, begin_sql(opts), NULL, 0, NULL);
  }
  if (rc != ERR_OK) return rc;
  c->in_tx = true;
  c->tx_err = ERR_OK;
  rc = apply_opts(c, opts);
  if (rc != ERR_OK) {
    db_error saved = tl_err;
    (void)db_rollback(c);
    tl_err = saved;
  }
  return rc;
}

int db_begin(db_conn *c, const char *tenant_id) {
  db_tx_opts o = {.tenant_id = tenant_id};
  return db_begin_opts(c, &o);
}

int db_rollback(db_conn *c) {
  if (c == NULL) return ERR_OK;
  c->committed = false;
  if (!c->in_tx) return ERR_OK;
  c->in_tx = false;
  c->tx_err = ERR_OK;
  if (c->deferred.pending) { /* nothing was sent */
    deferred_clear(&c->deferred);
    return ERR_OK;
  }
  if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) return ERR_OK;
  PGresult *res = PQexec(c->pg, "ROLLBACK");
  if (PQresultStatus(res) != PGRES_COMMAND_OK) c->discard = true;
  PQclear(res);
  return ERR_OK;
}

int db_commit(db_conn *c) {
  if (c != NULL && c->committed) { /* by db_exec_commit */
    c->committed = false;
    return ERR_OK;
  }
  if (c == NULL || !c->in_tx)
    return db_set_error(ERR_INVAL, NULL, "no transaction open");
  if (c->deferred.pending) { /* nothing was sent: nothing to commit */
    deferred_clear(&c->deferred);
    c->in_tx = false;
    return ERR_OK;
  }
  if (c->tx_err != ERR_OK ||
      (c->pg != NULL && PQtransactionStatus(c->pg) == PQTRANS_INERROR)) {
    /* COMMIT of a failed transaction "succeeds" as a ROLLBACK: report the
     * error that spoiled it instead. */
    int code = c->tx_err != ERR_OK ? c->tx_err : ERR_DB;
    db_error saved = tl_err; /* keep the spoiling statement's details */
    (void)db_rollback(c);
    tl_err = saved;
    if (tl_err.code == ERR_OK)
      db_set_error(code, NULL,
                   "transaction rolled back after an earlier error");
    return code;
  }
  int rc = db_exec(c, "COMMIT", NULL, 0, NULL);
  c->in_tx = false; /* committed or, on failure, rolled back by the server */
  c->tx_err = ERR_OK;
  return rc;
}

bool db_in_tx(const db_conn *c) { return c != NULL && c->in_tx; }

int db_with_tx(db_pool *p, const db_tx_opts *opts, int max_retries,
               int (*fn)(db_conn *c, void *ud), void *ud) {
  int rc = ERR_INTERNAL;
  for (int attempt = 0; attempt <= max_retries; attempt++) {
    db_conn *c = NULL;
    rc = db_acquire(p, &c);
    if (rc != ERR_OK) return rc;
    rc = db_begin_opts(c, opts);
    if (rc == ERR_OK) {
      rc = fn(c, ud);
      if (rc == ERR_OK) {
        rc = db_commit(c);
      } else {
        db_error saved = tl_err;
        (void)db_rollback(c);
        tl_err = saved;
      }
    }
    db_release(c);
    if (rc != ERR_CONFLICT) break;
  }
  return rc;
}

/* ---------------------------------------------------------------- stores ---
 */

struct db_store {
  db_pool *pool;
  char role[64]; /* db_ident_ok or "" */
};

int db_store_new(db_pool *db, const char *role, db_store **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (db == NULL || (role != NULL && role[0] != '\0' && !db_ident_ok(role)))
    return ERR_INVAL;
  db_store *s = calloc(1, sizeof *s);
  if (s == NULL) return ERR_NOMEM;
  s->pool = db;
  str_copy(s->role, role != NULL ? role : "", sizeof s->role);
  *out = s;
  return ERR_OK;
}

void db_store_free(db_store *s) { free(s); }

db_pool *db_store_pool(const db_store *s) { return s->pool; }

int db_store_tx(const db_store *s, const db_tx_opts *opts,
                int (*fn)(db_conn *c, void *ud), void *ud) {
  db_tx_opts o = {0};
  if (opts != NULL) o = *opts;
  o.role = s->role;
  return db_with_tx(s->pool, &o, DB_TX_RETRIES, fn, ud);
}

int db_store_run(const db_store *s, const char *tid, const char *scope,
                 bool read_only, int (*fn)(db_conn *c, void *ud), void *ud) {
  db_setting on = {scope, "on"};
  db_tx_opts o = {.tenant_id = tid, .read_only = read_only};
  if (tid == NULL && scope != NULL) {
    o.settings = &on;
    o.nsettings = 1;
  }
  return db_store_tx(s, &o, fn, ud);
}

/* --------------------------------------------------------------- results ---
 */

void db_result_free(db_result *r) { PQclear(R(r)); }

int db_nrows(const db_result *r) { return r != NULL ? PQntuples(R(r)) : 0; }

int db_ncols(const db_result *r) { return r != NULL ? PQnfields(R(r)) : 0; }

int db_col(const db_result *r, const char *name) {
  return (r != NULL && name != NULL) ? PQfnumber(R(r), name) : -1;
}

int64_t db_affected(const db_result *r) {
  if (r == NULL) return 0;
  const char *s = PQcmdTuples(R(r));
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  return (end == s || errno != 0) ? 0 : (int64_t)v;
}

static bool in_range(const db_result *r, int row, int col) {
  return r != NULL && row >= 0 && col >= 0 && row < PQntuples(R(r)) &&
         col < PQnfields(R(r));
}

bool db_is_null(const db_result *r, int row, int col) {
  return !in_range(r, row, col) || PQgetisnull(R(r), row, col);
}

const char *db_get(const db_result *r, int row, int col) {
  return db_is_null(r, row, col) ? NULL : PQgetvalue(R(r), row, col);
}

size_t db_page_rows(const db_result *r, size_t limit, bool *more) {
  size_t n = r != NULL ? (size_t)db_nrows(r) : 0;
  *more = n > limit;
  return *more ? limit : n;
}

const char *db_cell(const db_result *r, int row, int col) {
  const char *v = db_get(r, row, col);
  return v != NULL ? v : "";
}

void db_copy_cell(const db_result *r, int row, int col, char *dst, size_t cap) {
  str_copy(dst, db_cell(r, row, col), cap);
}

int db_get_int64(const db_result *r, int row, int col, int64_t *out) {
  const char *s = db_get(r, row, col);
  if (s == NULL || s[0] == '\0') return ERR_INVAL;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0') return ERR_INVAL;
  *out = (int64_t)v;
  return ERR_OK;
}

int db_get_bool(const db_result *r, int row, int col, bool *out) {
  const char *s = db_get(r, row, col);
  if (s == NULL) return ERR_INVAL;
  if (strcmp(s, "t") == 0) {
    *out = true;
  } else if (strcmp(s, "f") == 0) {
    *out = false;
  } else {
    return ERR_INVAL;
  }
  return ERR_OK;
}

int db_get_bytes(const db_result *r, int row, int col, unsigned char **out,
                 size_t *len) {
  *out = NULL;
  *len = 0;
  const char *s = db_get(r, row, col);
  if (s == NULL) return ERR_INVAL;
  size_t n = 0;
  unsigned char *raw = PQunescapeBytea((const unsigned char *)s, &n);
  if (raw == NULL) return ERR_NOMEM;
  unsigned char *copy = malloc(n > 0 ? n : 1);
  if (copy == NULL) {
    PQfreemem(raw);
    return ERR_NOMEM;
  }
  memcpy(copy, raw, n);
  PQfreemem(raw);
  *out = copy;
  *len = n;
  return ERR_OK;
}
