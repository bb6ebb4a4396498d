/*
 * idem.c - idempotency keys in the caller's transactions (see idem.h).
 *
 * The advisory lock is the concurrency wall: two calls with one key take
 * turns on it, and the second one is refused at once (BUSY) rather than
 * queued, because a client that sent a twin is better told "still
 * running" than kept waiting for a transaction that may take seconds.
 * The lock's 64-bit hash may map two keys alike; the primary key is the
 * last wall then (idem_save and idem_claim report ERR_EXISTS instead of
 * a second answer).
 *
 * SQL is built with the table name (checked identifier, from code) and
 * every value is a parameter.
 */
#include "libs/idem/idem.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

#define SQL_MAX IDEM_SQL_MAX
#define TABLE_MAX 127

int idem_hash(const char *tag, const char *method, const void *payload,
              size_t len, uint8_t out[IDEM_HASH_LEN]) {
  return idem_hash_keyed(NULL, tag, method, payload, len, out);
}

int idem_hash_keyed(const uint8_t *secret, const char *tag, const char *method,
                    const void *payload, size_t len,
                    uint8_t out[IDEM_HASH_LEN]) {
  if (sodium_init() < 0) return ERR_INTERNAL;
  const char *t = tag ? tag : "";
  const char *m = method ? method : "";
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret, secret ? IDEM_SECRET_LEN : 0,
                          IDEM_HASH_LEN);
  /* Each string with its NUL: "ab"+"c" never hashes like "a"+"bc". */
  crypto_generichash_update(&st, (const unsigned char *)t, strlen(t) + 1);
  crypto_generichash_update(&st, (const unsigned char *)m, strlen(m) + 1);
  if (len > 0) crypto_generichash_update(&st, payload, len);
  crypto_generichash_final(&st, out, IDEM_HASH_LEN);
  return ERR_OK;
}

bool idem_key_valid(const char *key) {
  if (key == NULL) return false;
  size_t n = strnlen(key, IDEM_KEY_MAX_LEN + 1);
  return n >= 1 && n <= IDEM_KEY_MAX_LEN && str_is_printable(key, n);
}

void idem_found_clear(idem_found *found) {
  if (found == NULL) return;
  free(found->answer);
  memset(found, 0, sizeof *found);
}

/* "schema.table", each part a plain lower-case identifier. */
static bool table_ok(const char *table) {
  if (table == NULL || strnlen(table, TABLE_MAX + 1) > TABLE_MAX) return false;
  const char *dot = strchr(table, '.');
  if (dot == NULL || strchr(dot + 1, '.') != NULL) return false;
  char schema[TABLE_MAX + 1];
  size_t n = (size_t)(dot - table);
  memcpy(schema, table, n);
  schema[n] = '\0';
  return db_ident_ok(schema) && db_ident_ok(dot + 1);
}

/* Formats fmt with the table name into buf (SQL_MAX). */
static int sql_for(char *buf, const char *fmt, const char *table) {
  if (!table_ok(table)) return ERR_INVAL;
  int n = snprintf(buf, SQL_MAX, fmt, table);
  return n > 0 && n < SQL_MAX ? ERR_OK : ERR_TOOBIG;
}

static bool ref_ok(const idem_ref *r) {
  return r != NULL && r->tenant_id != NULL && r->principal != NULL &&
         idem_key_valid(r->key) && r->hash != NULL && table_ok(r->table);
}

/* The key's lock and its row in one statement: the advisory lock is
 * tried first (a one-row subquery with a volatile function is evaluated
 * once, never flattened into the join) and the row is read only when it
 * was taken. Columns: locked, request_hash, response_code, response,
 * live. Its row read uses the snapshot taken when the statement began,
 * before the lock: a twin that committed in between is not seen. So
 * idem_begin runs LOCK_SQL before it, and a pipelined caller either does
 * the same or, as orders does, saves its answer with a plain INSERT that
 * such a twin's row makes fail (idem.h, idem_begin_stmt). */
#define LOCK_SQL "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))"
#define BEGIN_SQL                                                              \
  "SELECT l.locked, t.request_hash, t.response_code, t.response, "             \
  "t.expires_at > now() FROM (SELECT pg_try_advisory_xact_lock("               \
  "hashtextextended($4, 0)) AS locked) l LEFT JOIN %s t ON l.locked AND "      \
  "t.tenant_id = $1::uuid AND t.principal = $2 AND t.key = $3"

int idem_begin_stmt(const idem_ref *r, idem_stmt *out) {
  memset(out, 0, sizeof *out);
  if (!ref_ok(r)) return ERR_INVAL;
  int rc = sql_for(out->sql, BEGIN_SQL, r->table);
  if (rc != ERR_OK) return rc;
  snprintf(out->lock_name, sizeof out->lock_name, "%.127s|%s|%s|%s",
           r->lock_ns ? r->lock_ns : r->table, r->tenant_id, r->principal,
           r->key);
  out->ps[0] = db_text(r->tenant_id);
  out->ps[1] = db_text(r->principal);
  out->ps[2] = db_text(r->key);
  out->ps[3] = db_text(out->lock_name);
  out->stmt = (db_stmt){.sql = out->sql, .params = out->ps, .nparams = 4};
  return ERR_OK;
}

/* The outcome of a live row: same hash -> replay (or busy while a claim),
 * another hash -> reused. */
static int judge_row(const db_result *res, const idem_ref *r, idem_found *out) {
  unsigned char *hash = NULL;
  size_t hlen = 0;
  int64_t code = 0;
  int rc = db_get_bytes(res, 0, 1, &hash, &hlen);
  if (rc == ERR_OK) rc = db_get_int64(res, 0, 2, &code);
  bool same = rc == ERR_OK && hlen == IDEM_HASH_LEN &&
              sodium_memcmp(hash, r->hash, IDEM_HASH_LEN) == 0;
  free(hash);
  if (rc != ERR_OK) return rc;
  if (!same) {
    out->outcome = IDEM_REUSED;
    return ERR_OK;
  }
  if (code == IDEM_PENDING) {
    out->outcome = IDEM_BUSY;
    out->pending = true; /* the note, for a takeover by the same request */
    return db_get_bytes(res, 0, 3, &out->answer, &out->len);
  }
  out->code = (int)code;
  out->outcome = IDEM_REPLAY;
  return db_get_bytes(res, 0, 3, &out->answer, &out->len);
}

int idem_begin_result(const idem_ref *r, const db_result *res, idem_found *out,
                      bool *expired) {
  memset(out, 0, sizeof *out);
  *expired = false;
  bool locked = false, live = false;
  if (db_nrows(res) != 1) return ERR_INTERNAL;
  int rc = db_get_bool(res, 0, 0, &locked);
  if (rc != ERR_OK) return rc;
  if (!locked) {
    out->outcome = IDEM_BUSY;
    return ERR_OK;
  }
  if (db_is_null(res, 0, 4)) return ERR_OK; /* no row: IDEM_NEW */
  rc = db_get_bool(res, 0, 4, &live);
  if (rc == ERR_OK && live) rc = judge_row(res, r, out);
  if (rc != ERR_OK) {
    idem_found_clear(out);
    return rc;
  }
  *expired = !live;
  return ERR_OK;
}

int idem_forget_stmt(const idem_ref *r, idem_stmt *out) {
  memset(out, 0, sizeof *out);
  if (!ref_ok(r)) return ERR_INVAL;
  int rc = sql_for(out->sql,
                   "DELETE FROM %s WHERE tenant_id = $1::uuid AND principal = "
                   "$2 AND key = $3",
                   r->table);
  out->ps[0] = db_text(r->tenant_id);
  out->ps[1] = db_text(r->principal);
  out->ps[2] = db_text(r->key);
  out->stmt = (db_stmt){.sql = out->sql, .params = out->ps, .nparams = 3};
  return rc;
}

int idem_begin(db_conn *c, const idem_ref *r, idem_found *out) {
  memset(out, 0, sizeof *out);
  idem_stmt *st = malloc(sizeof *st);
  if (st == NULL) return ERR_NOMEM;
  db_result *res = NULL;
  bool expired = false;
  int rc = idem_begin_stmt(r, st);
  /* The lock first, in a statement of its own: under READ COMMITTED a
   * statement reads the snapshot taken when it started, so the one
   * statement alone could take the lock just after a twin committed and
   * still not see the twin's row (both would go on). The second
   * statement takes the (re-entrant) lock again and reads a snapshot
   * taken after it. */
  bool locked = false;
  if (rc == ERR_OK) rc = db_exec(c, LOCK_SQL, &st->ps[3], 1, &res);
  if (rc == ERR_OK) rc = db_nrows(res) == 1 ? ERR_OK : ERR_INTERNAL;
  if (rc == ERR_OK) rc = db_get_bool(res, 0, 0, &locked);
  db_result_free(res);
  res = NULL;
  if (rc == ERR_OK && !locked) {
    out->outcome = IDEM_BUSY;
    free(st);
    return ERR_OK;
  }
  if (rc == ERR_OK) rc = db_exec(c, st->sql, st->ps, 4, &res);
  if (rc == ERR_OK) rc = idem_begin_result(r, res, out, &expired);
  db_result_free(res);
  /* Expired: forget it now (the janitor would, a little later). */
  if (rc == ERR_OK && expired) rc = idem_forget_stmt(r, st);
  if (rc == ERR_OK && expired) rc = db_exec(c, st->sql, st->ps, 3, NULL);
  free(st);
  return rc;
}

/* Inserts (or, over this request's own claim, updates) the key's row. */
static int upsert(db_conn *c, const idem_ref *r, int code,
                  const uint8_t *answer, size_t len, int64_t ttl_ms) {
  if (!ref_ok(r) || ttl_ms <= 0) return ERR_INVAL;
  char sql[SQL_MAX];
  int rc = sql_for(
      sql,
      "INSERT INTO %s AS t (tenant_id, principal, key, method, "
      "request_hash, response_code, response, expires_at) VALUES "
      "($1::uuid, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => "
      "$8::bigint / 1000.0)) ON CONFLICT (tenant_id, principal, key) DO "
      "UPDATE SET response_code = EXCLUDED.response_code, response = "
      "EXCLUDED.response, expires_at = EXCLUDED.expires_at WHERE "
      "t.response_code = -1 AND t.request_hash = EXCLUDED.request_hash",
      r->table);
  if (rc != ERR_OK) return rc;
  static const uint8_t none = 0;
  db_param ps[] = {db_text(r->tenant_id),
                   db_text(r->principal),
                   db_text(r->key),
                   db_text(r->method ? r->method : ""),
                   db_bytes(r->hash, IDEM_HASH_LEN),
                   db_int64(code),
                   db_bytes(answer ? answer : &none, answer ? len : 0),
                   db_int64(ttl_ms)};
  db_result *res = NULL;
  rc = db_exec(c, sql, ps, DB_NPARAMS(ps), &res);
  if (rc == ERR_OK && db_affected(res) != 1) rc = ERR_EXISTS;
  db_result_free(res);
  return rc;
}

int idem_insert_stmt(const idem_ref *r, int code, const uint8_t *answer,
                     size_t len, idem_stmt *out) {
  memset(out, 0, sizeof *out);
  if (!ref_ok(r) || r->ttl_ms <= 0 || code == IDEM_PENDING) return ERR_INVAL;
  int rc = sql_for(out->sql,
                   "INSERT INTO %s (tenant_id, principal, key, method, "
                   "request_hash, response_code, response, expires_at) VALUES "
                   "($1::uuid, $2, $3, $4, $5, $6, $7, now() + make_interval("
                   "secs => $8::bigint / 1000.0))",
                   r->table);
  static const uint8_t none = 0;
  out->ps[0] = db_text(r->tenant_id);
  out->ps[1] = db_text(r->principal);
  out->ps[2] = db_text(r->key);
  out->ps[3] = db_text(r->method ? r->method : "");
  out->ps[4] = db_bytes(r->hash, IDEM_HASH_LEN);
  out->ps[5] = db_int64(code);
  out->ps[6] = db_bytes(answer ? answer : &none, answer ? len : 0);
  out->ps[7] = db_int64(r->ttl_ms);
  out->stmt = (db_stmt){.sql = out->sql, .params = out->ps, .nparams = 8};
  return rc;
}

int idem_save(db_conn *c, const idem_ref *r, int code, const uint8_t *answer,
              size_t len) {
  if (code == IDEM_PENDING || r == NULL) return ERR_INVAL;
  return upsert(c, r, code, answer, len, r->ttl_ms);
}

int idem_claim(db_conn *c, const idem_ref *r, int64_t lease_ms) {
  return upsert(c, r, IDEM_PENDING, NULL, 0, lease_ms);
}

int idem_claim_note(db_conn *c, const idem_ref *r, int64_t lease_ms,
                    const uint8_t *note, size_t len) {
  if ((note == NULL && len > 0) || len > IDEM_NOTE_MAX) return ERR_INVAL;
  return upsert(c, r, IDEM_PENDING, note, note ? len : 0, lease_ms);
}

int idem_release(db_conn *c, const idem_ref *r) {
  if (!ref_ok(r)) return ERR_INVAL;
  char sql[SQL_MAX];
  int rc = sql_for(sql,
                   "DELETE FROM %s WHERE tenant_id = $1::uuid AND "
                   "principal = $2 AND key = $3 AND response_code = -1 AND "
                   "request_hash = $4",
                   r->table);
  db_param ps[] = {db_text(r->tenant_id), db_text(r->principal),
                   db_text(r->key), db_bytes(r->hash, IDEM_HASH_LEN)};
  return rc == ERR_OK ? db_exec(c, sql, ps, DB_NPARAMS(ps), NULL) : rc;
}

int idem_expire(db_conn *c, const char *table, size_t batch, int64_t *deleted) {
  if (deleted != NULL) *deleted = 0;
  char sql[SQL_MAX];
  int rc = sql_for(sql,
                   "DELETE FROM %1$s WHERE ctid IN (SELECT ctid FROM %1$s "
                   "WHERE expires_at <= now() LIMIT $1)",
                   table);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_int64((int64_t)(batch ? batch : 1000))};
  db_result *res = NULL;
  rc = db_exec(c, sql, ps, 1, &res);
  if (rc == ERR_OK && deleted != NULL) *deleted = db_affected(res);
  db_result_free(res);
  return rc;
}

typedef struct expire_args {
  const char *table;
  size_t batch;
  int64_t *deleted;
} expire_args;

static int expire_fn(db_conn *c, void *ud) {
  const expire_args *a = ud;
  return idem_expire(c, a->table, a->batch, a->deleted);
}

int idem_expire_all(const db_store *st, const char *scope, const char *table,
                    size_t batch, int64_t *deleted) {
  if (deleted != NULL) *deleted = 0;
  expire_args a = {.table = table, .batch = batch, .deleted = deleted};
  return db_store_run(st, NULL, scope, false, expire_fn, &a);
}
