/*
 * db.h - PostgreSQL access for every service: a connection pool,
 * parameterised queries, tenant-scoped transactions, errors as ERR_* codes,
 * and the per-service migration runner.
 *
 * The pool. A db_pool holds up to max_conns libpq connections, opened
 * lazily. db_acquire() hands one out (waiting up to acquire_timeout_ms for
 * a free one, then ERR_TIMEOUT); db_release() gives it back. The pool is
 * thread-safe; a db_conn belongs to one thread between acquire and release.
 *
 * Reconnects. A connection that broke while idle (server restart,
 * pg_terminate_backend) is noticed when it is handed out (libpq status and
 * a zero-timeout poll for a pending close) and replaced by a fresh one. A
 * connection that breaks while checked out makes that call fail with
 * ERR_UNAVAILABLE; it is never silently retried inside a transaction, but
 * the next db_begin()/db_exec() outside a transaction on the same db_conn
 * reconnects first (nothing is in flight then, so this is safe), and
 * db_release() discards a broken connection. A statement is never re-sent
 * after a connection failure: whether it ran before the connection died is
 * unknowable. (The one re-send: a prepared statement the server refused
 * to run at all - its cached result type changed, SQLSTATE 0A000, or the
 * session lost it, 26000 - is run again unnamed when no transaction is
 * open; see "Prepared statements".)
 *
 * Queries. SQL is always a constant string with $1..$n placeholders and the
 * values travel separately: no function here pastes a value into SQL text.
 *
 * Prepared statements. Each connection prepares a statement the first time
 * it runs it (PQprepare) and executes it by name afterwards
 * (PQexecPrepared), keyed by the exact SQL text, up to 256 per connection.
 * A pooler in front of PostgreSQL must therefore run in session mode. Values
 * are db_param: text (NUL-terminated), binary bytes (for bytea; may contain
 * NUL), int64, bool or NULL.
 *
 * Tenants. db_begin(c, tenant_id) starts a transaction and, when tenant_id
 * is not NULL, runs set_config('app.tenant_id', $1, true) - the
 * parameterised form of SET LOCAL - so row-level-security policies on
 * current_setting('app.tenant_id', true) see it until COMMIT/ROLLBACK and
 * no longer afterwards. Outside a tenant transaction the setting is NULL or
 * '' (a session that once set it keeps an empty placeholder), so write
 * policies as
 *   USING (tenant_id = NULLIF(current_setting('app.tenant_id', true),
 * '')::uuid) which matches nothing when no tenant is set. Superusers and table
 * owners bypass RLS unless the table has FORCE ROW LEVEL SECURITY: services
 * should connect as a non-superuser role.
 *
 * Errors. Every function returns ERR_OK or an ERR_* code; SQLSTATEs map as
 *   23505 unique_violation            -> ERR_EXISTS
 *   40001 serialization_failure,
 *   40P01 deadlock_detected, 55P03    -> ERR_CONFLICT
 *   57014 query_canceled (timeout)    -> ERR_TIMEOUT
 *   class 22 (bad data, e.g. a malformed uuid)  -> ERR_INVAL
 *   class 08, 57P01-57P03, 53300, or a lost connection -> ERR_UNAVAILABLE
 *   anything else                     -> ERR_DB
 * and the details of the most recent failure in the calling thread are in
 * db_last_error(): SQLSTATE, a message and the constraint name. The message
 * never contains parameter values (PostgreSQL's DETAIL, which does, is
 * dropped, and a primary message is cut before its ": <value>" part), so
 * it is safe to log.
 */
#ifndef LIBS_DB_DB_H
#define LIBS_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

typedef struct db_pool db_pool;
typedef struct db_conn db_conn;
typedef struct db_result db_result;

/* ---------------------------------------------------------------- pool --- */

typedef struct db_config {
  /* libpq connection string, keyword ("host=... dbname=...") or URI
   * ("postgresql://user@host:port/db") form. Required. Copied. */
  const char *conninfo;
  int max_conns;                /* connections at most; 0 -> 8 */
  int acquire_timeout_ms;       /* wait for a free connection; 0 -> 5000 */
  int connect_timeout_ms;       /* per connection attempt, rounded up to whole
                                 * seconds, at least 2 (libpq); 0 -> 5000 */
  int statement_timeout_ms;     /* server-side limit per statement; 0 -> none */
  const char *application_name; /* shown in pg_stat_activity; may be NULL */
} db_config;

/* Creates a pool; opens no connection yet (see db_ping). Returns ERR_INVAL
 * for a missing conninfo or negative limits, ERR_NOMEM. The caller owns
 * *out and frees it with db_pool_free. */
int db_pool_new(const db_config *cfg, db_pool **out) WARN_UNUSED;

/* Closes every idle connection and frees the pool. All connections must
 * have been released. NULL-safe. */
void db_pool_free(db_pool *p);

/* Takes a connection: an idle one (checked and replaced if broken), or a
 * new one while fewer than max_conns are open. Waits up to
 * acquire_timeout_ms when all are in use. Errors: ERR_TIMEOUT (none became
 * free), ERR_UNAVAILABLE (could not connect; db_last_error says why),
 * ERR_NOMEM. *out is lent to the caller until db_release. */
int db_acquire(db_pool *p, db_conn **out) WARN_UNUSED;

/* Returns c to its pool. An open transaction is rolled back; a broken
 * connection is closed instead of kept. NULL-safe. */
void db_release(db_conn *c);

/* Closes c on db_release instead of returning it to the pool: for a
 * connection whose session state (settings, session advisory locks) could
 * not be put back. */
void db_conn_discard(db_conn *c);

/* Acquires, runs SELECT 1, releases: for readiness probes. */
int db_ping(db_pool *p) WARN_UNUSED;

typedef struct db_pool_stats {
  int open;                  /* connections open (idle + in use) */
  int in_use;                /* lent out */
  int waiting;               /* threads waiting in db_acquire */
  uint64_t acquire_timeouts; /* db_acquire calls that gave ERR_TIMEOUT */
  uint64_t reconnects;       /* broken connections replaced */
} db_pool_stats;

/* A snapshot of the pool's counters (for metrics gauges). */
void db_pool_get_stats(db_pool *p, db_pool_stats *out);

/* ----------------------------------------------------------- parameters --- */

enum db_param_kind { DB_P_NULL, DB_P_TEXT, DB_P_BINARY, DB_P_INLINE };

/* One query parameter. Build it with the constructors below; the value is
 * borrowed (not copied), so it must outlive the db_exec call. */
typedef struct db_param {
  enum db_param_kind kind;
  const char *data; /* DB_P_TEXT: NUL-terminated; DB_P_BINARY: len bytes */
  int len;
  char inline_text[24]; /* DB_P_INLINE: an int64 or bool as text */
} db_param;

/* Text (NUL-terminated; PostgreSQL text cannot hold NUL bytes). A NULL s
 * gives SQL NULL. */
db_param db_text(const char *s);
/* Raw bytes in binary format, for bytea columns: any bytes, NULs too. */
db_param db_bytes(const void *data, size_t len);
db_param db_int64(int64_t v);
db_param db_bool(bool v);
db_param db_null(void);

#define DB_NPARAMS(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))

/* -------------------------------------------------------------- queries --- */

/* Runs one statement (constant SQL with $1..$n) with nparams parameters.
 * Results are in text format. *out (optional: pass NULL to discard) gets a
 * result the caller frees with db_result_free; on failure *out is NULL.
 * Errors: the SQLSTATE mapping above; ERR_INVAL for nparams < 0 or params
 * NULL with nparams > 0. Outside a transaction the statement autocommits. */
int db_exec(db_conn *c, const char *sql, const db_param *params, int nparams,
            db_result **out) WARN_UNUSED;

/* ------------------------------------------------------------ pipelines ---
 *
 * Statements that do not need each other's results can share one network
 * round trip (libpq pipeline mode): they are sent together, run by the
 * server in order, and their results read afterwards. Each is prepared once
 * per connection as db_exec does (one not yet prepared on this session is
 * prepared in the same round trip). The first statement that fails stops
 * the pipeline - the server skips the rest - and its error is returned,
 * mapped as db_exec's; inside a transaction that spoils the transaction as
 * a failed db_exec does. Bounded: at most DB_PIPELINE_MAX statements, and
 * each pipeline's values are small (libpq writes them in blocking mode
 * before reading any result, so megabytes of values could stall on full
 * socket buffers).
 */

/* One statement of a pipeline: db_exec's arguments. */
typedef struct db_stmt {
  const char *sql;
  const db_param *params;
  int nparams;
} db_stmt;

#define DB_PIPELINE_MAX 64

/* Runs v[0..n) in one round trip. out (optional) gets n results, out[i]
 * v[i]'s, each freed by the caller with db_result_free; on failure every
 * out[i] is NULL. Errors: db_exec's; ERR_INVAL for n of 0 or more than
 * DB_PIPELINE_MAX or a statement db_exec would refuse. */
int db_exec_pipeline(db_conn *c, const db_stmt *v, size_t n,
                     db_result **out) WARN_UNUSED;

/* db_exec_pipeline and then COMMIT in the same round trip; for the last
 * statements of a transaction (ERR_INVAL outside one). On ERR_OK the
 * transaction committed, and the db_commit that db_with_tx runs after fn
 * returns ERR_OK without a round trip; nothing may run in the transaction
 * after it. On an error the transaction is rolled back. */
int db_exec_commit(db_conn *c, const db_stmt *v, size_t n,
                   db_result **out) WARN_UNUSED;

/* ---------------------------------------------------------- transactions ---
 */

enum db_isolation {
  DB_READ_COMMITTED = 0,
  DB_REPEATABLE_READ,
  DB_SERIALIZABLE,
};

/* One custom setting for a transaction: name is a placeholder of the
 * form "class.name" ("app.directory"), the value any text. Both borrowed. */
typedef struct db_setting {
  const char *name;
  const char *value;
} db_setting;

#define DB_TX_SETTINGS_MAX 8

typedef struct db_tx_opts {
  const char *tenant_id; /* app.tenant_id for this transaction, or NULL */
  enum db_isolation isolation;
  bool read_only;
  int statement_timeout_ms; /* overrides the pool's for this tx; 0 = keep */
  /* The role the transaction runs as (SET LOCAL ROLE), NULL or "" for the
   * connection's own. A service connects with whatever DATABASE_URL names
   * - a superuser in dev and tests - and switches to its non-superuser
   * role here, so row-level security binds in every environment. Must
   * pass db_ident_ok. */
  const char *role;
  /* Further transaction-local settings the service's policies read
   * (settings[0..nsettings), at most DB_TX_SETTINGS_MAX); names must
   * contain a '.' (custom settings; extension parameters have dots too,
   * so the names must come from service code, never from input). */
  const db_setting *settings;
  size_t nsettings;
  /* BEGIN and the settings wait for the transaction's first statement
   * (db_exec, db_exec_pipeline, db_exec_commit) and go in its round trip:
   * one network wait fewer per transaction. Their errors then come back
   * from that statement; a transaction that runs no statement sends
   * nothing at all. */
  bool defer_begin;
} db_tx_opts;

/* BEGIN, then, in one statement of set_config(..., true) calls - the
 * parameterised form of SET LOCAL, undone at COMMIT/ROLLBACK -
 * app.tenant_id (when tenant_id is not NULL), statement_timeout, the role,
 * and the settings in order. If
 * the connection turns out to be dead at BEGIN it is replaced and BEGIN
 * retried once (nothing had run yet). Errors: ERR_INVAL if a transaction
 * is already open, for a role that is not db_ident_ok or a setting name
 * without a '.' (checked before anything is sent), mapping above. */
int db_begin(db_conn *c, const char *tenant_id) WARN_UNUSED;
int db_begin_opts(db_conn *c, const db_tx_opts *opts) WARN_UNUSED;

/* COMMIT. A transaction in which a statement failed cannot commit: it is
 * rolled back and ERR_DB returned (ERR_CONFLICT for a serialisation
 * failure detected at commit). ERR_INVAL when no transaction is open. */
int db_commit(db_conn *c) WARN_UNUSED;

/* ROLLBACK; ERR_OK also when no transaction is open or the connection is
 * gone (the server rolls back on disconnect). */
int db_rollback(db_conn *c);

/* True while a transaction is open on c (also after a failed statement). */
bool db_in_tx(const db_conn *c);

/* Acquire, db_begin_opts, fn(conn, ud), commit, release: the usual shape
 * of a request. fn returns ERR_OK to commit or any error to roll back
 * (that error is returned). On ERR_CONFLICT (serialisation failure,
 * deadlock) the whole transaction is retried up to max_retries times, so
 * fn must have no side effects outside the database. opts may be NULL. */
int db_with_tx(db_pool *p, const db_tx_opts *opts, int max_retries,
               int (*fn)(db_conn *c, void *ud), void *ud) WARN_UNUSED;

/* True for an unquoted lower-case SQL identifier, [a-z_][a-z0-9_]{0,62}:
 * what schema and role names given to this library must be (a service
 * checks its configured role with it at start-up). */
bool db_ident_ok(const char *s);

/* How many times a service reruns a transaction that failed on a
 * serialisation failure or deadlock (ERR_CONFLICT) before that error
 * reaches its caller: the max_retries every service passes to db_with_tx. */
#define DB_TX_RETRIES 3

/* ---------------------------------------------------------------- stores ---
 */

/* A service's store: the pool its SQL runs on and the non-superuser role
 * every one of its transactions switches to (db_tx_opts.role). The same
 * for every service, so a service's store.h says `typedef db_store store;`
 * and its store_new/store_free are these. */
typedef struct db_store db_store;

/* A store on pool db (borrowed: it must outlive the store) running as role
 * (copied; NULL or "" for the connection's own). *out is the caller's, freed
 * with db_store_free. Errors: ERR_INVAL for a NULL out or db or a role that
 * is not db_ident_ok (*out NULL), ERR_NOMEM. */
int db_store_new(db_pool *db, const char *role, db_store **out) WARN_UNUSED;

/* Frees the store (not its pool). NULL-safe. */
void db_store_free(db_store *s);

/* The pool the store was made with (borrowed). */
db_pool *db_store_pool(const db_store *s);

/* db_with_tx on the store's pool with opts (NULL: none) as the store's
 * role - opts->role is ignored - and DB_TX_RETRIES retries. Errors: those
 * of db_with_tx. */
int db_store_tx(const db_store *s, const db_tx_opts *opts,
                int (*fn)(db_conn *c, void *ud), void *ud) WARN_UNUSED;

/* db_store_tx in the one scope a store function runs in: tenant tid's rows
 * (db_tx_opts.tenant_id) when tid is set; when tid is NULL, across tenants
 * under the policy the setting named scope turns on (scope = 'on', e.g.
 * "app.orders_janitor"; nothing when scope is NULL too). read_only as in
 * db_tx_opts. The call every service's store makes instead of building
 * the options itself. Errors: those of db_with_tx. */
int db_store_run(const db_store *s, const char *tid, const char *scope,
                 bool read_only, int (*fn)(db_conn *c, void *ud),
                 void *ud) WARN_UNUSED;

/* --------------------------------------------------------------- results ---
 */

void db_result_free(db_result *r); /* NULL-safe */

int db_nrows(const db_result *r);
int db_ncols(const db_result *r);
/* Column index by name, or -1. */
int db_col(const db_result *r, const char *name);
/* Rows affected by INSERT/UPDATE/DELETE (with or without RETURNING). */
int64_t db_affected(const db_result *r);

/* The text value of a cell, owned by r; NULL for SQL NULL or out of range. */
const char *db_get(const db_result *r, int row, int col);
/* db_get with "" for SQL NULL or out of range (col -1: a db_col that found
 * no such column), for fields whose absence is the empty string. */
const char *db_cell(const db_result *r, int row, int col);
/* Keyset pages: a list query asks for limit + 1 rows and the extra row
 * only says that another page follows. Returns how many rows of r belong
 * to the page (at most limit; 0 for a NULL r) and sets *more when r holds
 * the extra one. */
size_t db_page_rows(const db_result *r, size_t limit, bool *more);
/* db_cell copied into dst (capacity cap > 0, always NUL-terminated,
 * truncated to fit). */
void db_copy_cell(const db_result *r, int row, int col, char *dst, size_t cap);
/* True for SQL NULL (and out of range). */
bool db_is_null(const db_result *r, int row, int col);
/* Parses an integer / boolean cell. ERR_INVAL for NULL, out of range or a
 * value that is not one. */
int db_get_int64(const db_result *r, int row, int col,
                 int64_t *out) WARN_UNUSED;
int db_get_bool(const db_result *r, int row, int col, bool *out) WARN_UNUSED;
/* Decodes a bytea cell into a malloc'd buffer (*out, *len) the caller
 * frees. ERR_INVAL for NULL or out of range, ERR_NOMEM. */
int db_get_bytes(const db_result *r, int row, int col, unsigned char **out,
                 size_t *len) WARN_UNUSED;

/* ---------------------------------------------------------------- errors ---
 */

typedef struct db_error {
  int code;            /* the ERR_* returned */
  char sqlstate[6];    /* five characters, or "" for client-side failures */
  char message[256];   /* without parameter values */
  char constraint[64]; /* violated constraint's name, or "" */
} db_error;

/* The most recent failure of a db_ function in the calling thread (code
 * ERR_OK if none yet). Owned by the thread; overwritten by the next
 * failure. */
const db_error *db_last_error(void);

/* Maps a SQLSTATE (5 characters) to an ERR_* code as in the table above;
 * NULL or "" gives ERR_DB. */
int db_err_from_sqlstate(const char *sqlstate);

/* ------------------------------------------------------------ migrations ---
 */

/* Applies dir's migrations to schema. Files are named NNNN_name.sql (four
 * digits, then [A-Za-z0-9_-]) and applied in version order, each in its own
 * transaction with search_path set to the schema, and recorded in
 * <schema>.schema_migrations (version, name, checksum = SHA-256 of the
 * file, applied_at). Already applied files are skipped, so running twice
 * applies nothing; an applied file whose checksum changed is an error
 * (ERR_CONFLICT), as are duplicate versions and .sql files with other names
 * (ERR_INVAL). Runners for the same schema (replicas starting together)
 * are serialised by pg_advisory_lock on a hash of the schema name. A file
 * that fails is rolled back entirely and stops the run; the files before
 * it stay applied. Files must not contain BEGIN/COMMIT or statements that
 * cannot run in a transaction (CREATE INDEX CONCURRENTLY).
 *
 * schema: [a-z_][a-z0-9_]* up to 63 characters (ERR_INVAL otherwise).
 * applied (optional) gets the number of files applied by this call.
 * Files larger than DB_MIGRATION_MAX_BYTES give ERR_TOOBIG. The statement
 * timeout does not apply while migrating. */
#define DB_MIGRATION_MAX_BYTES (1 << 20)
int db_migrate(db_pool *p, const char *dir, const char *schema,
               int *applied) WARN_UNUSED;

#endif
