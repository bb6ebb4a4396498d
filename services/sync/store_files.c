/*
 * store_files.c - see store_files.h. Same shape as store.c: each public
 * function is an argument struct plus a static function run by db_store_run
 * (parameterised SQL, the tenant's RLS scope, whole-unit retries).
 *
 * Upload in one transaction: touch the row if it exists (done: 200); else
 * add the size to the tenant's usage only while it stays within quota
 * (one conditional UPDATE, which also serialises the tenant's concurrent
 * uploads on that row), then insert. Two uploads of the same new file
 * race to the primary key: the second's ON CONFLICT finds the first's row
 * and gives its size back, so usage counts each file once.
 */
#include "services/sync/store_files.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define HEX_LEN (STORE_FILE_HASH_LEN * 2)

static int run(store *st, const char *tid, int (*fn)(db_conn *, void *),
               void *ud) {
  return db_store_run(st, tid, NULL, false, fn, ud);
}

/* -------------------------------------------------------------- get --- */

typedef struct get_args {
  const char *tid;
  const uint8_t *hash;
  uint8_t **content;
  size_t *len;
} get_args;

static int get_fn(db_conn *c, void *ud) {
  get_args *a = ud;
  free(*a->content);
  *a->content = NULL;
  *a->len = 0;
  db_param ps[] = {db_text(a->tid), db_bytes(a->hash, STORE_FILE_HASH_LEN)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE sync.files SET last_used_at = now() "
                   "WHERE tenant_id = $1::uuid AND sha256 = $2 "
                   "RETURNING content",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) rc = db_get_bytes(r, 0, 0, a->content, a->len);
  db_result_free(r);
  return rc;
}

int store_file_get(store *st, const char *tid,
                   const uint8_t hash[STORE_FILE_HASH_LEN], uint8_t **content,
                   size_t *len) {
  *content = NULL;
  get_args a = {.tid = tid, .hash = hash, .content = content, .len = len};
  int rc = run(st, tid, get_fn, &a);
  if (rc != ERR_OK) {
    free(*content);
    *content = NULL;
    *len = 0;
  }
  return rc;
}

/* -------------------------------------------------------------- put --- */

typedef struct put_args {
  const char *tid;
  const uint8_t *hash, *content;
  size_t len;
  int64_t quota;
  bool *existed;
} put_args;

/* The statement's one row, or none (ERR_OK with *hit false). */
static int exec_hit(db_conn *c, const char *sql, const db_param *ps, int n,
                    bool *hit) {
  db_result *r = NULL;
  int rc = db_exec(c, sql, ps, n, &r);
  *hit = rc == ERR_OK && db_nrows(r) == 1;
  db_result_free(r);
  return rc;
}

static int put_fn(db_conn *c, void *ud) {
  put_args *a = ud;
  *a->existed = false;
  db_param key[] = {db_text(a->tid), db_bytes(a->hash, STORE_FILE_HASH_LEN)};
  bool hit = false;
  int rc = exec_hit(c,
                    "UPDATE sync.files SET last_used_at = now() "
                    "WHERE tenant_id = $1::uuid AND sha256 = $2 RETURNING 1",
                    key, DB_NPARAMS(key), &hit);
  if (rc != ERR_OK || hit) {
    *a->existed = hit;
    return rc;
  }
  db_param use[] = {db_text(a->tid), db_int64((int64_t)a->len),
                    db_int64(a->quota)};
  rc = db_exec(c,
               "INSERT INTO sync.file_usage (tenant_id) VALUES ($1::uuid) "
               "ON CONFLICT (tenant_id) DO NOTHING",
               use, 1, NULL);
  if (rc == ERR_OK)
    rc = exec_hit(c,
                  "UPDATE sync.file_usage SET bytes = bytes + $2::bigint "
                  "WHERE tenant_id = $1::uuid AND bytes + $2::bigint <= "
                  "$3::bigint RETURNING 1",
                  use, DB_NPARAMS(use), &hit);
  if (rc == ERR_OK && !hit) return ERR_TOOBIG;
  db_param row[] = {db_text(a->tid), db_bytes(a->hash, STORE_FILE_HASH_LEN),
                    db_int64((int64_t)a->len), db_bytes(a->content, a->len)};
  db_result *r = NULL;
  if (rc == ERR_OK)
    rc = db_exec(c,
                 "INSERT INTO sync.files (tenant_id, sha256, size, content) "
                 "VALUES ($1::uuid, $2, $3::bigint, $4) "
                 "ON CONFLICT (tenant_id, sha256) DO UPDATE "
                 "SET last_used_at = now() RETURNING (xmax = 0) AS inserted",
                 row, DB_NPARAMS(row), &r);
  bool inserted = true;
  if (rc == ERR_OK && db_get_bool(r, 0, 0, &inserted) != ERR_OK) rc = ERR_DB;
  db_result_free(r);
  if (rc == ERR_OK && !inserted) {
    /* A concurrent upload of the same file won: its size is counted. */
    *a->existed = true;
    rc = db_exec(c,
                 "UPDATE sync.file_usage SET bytes = bytes - $2::bigint "
                 "WHERE tenant_id = $1::uuid",
                 use, 2, NULL);
  }
  return rc;
}

int store_file_put(store *st, const char *tid,
                   const uint8_t hash[STORE_FILE_HASH_LEN],
                   const uint8_t *content, size_t len, int64_t quota,
                   bool *existed) {
  put_args a = {.tid = tid,
                .hash = hash,
                .content = content,
                .len = len,
                .quota = quota,
                .existed = existed};
  return run(st, tid, put_fn, &a);
}

/* ---------------------------------------------------------- present --- */

typedef struct present_args {
  const char *tid;
  const uint8_t *hashes;
  size_t n;
  bool *present;
  char *list; /* "hex,hex,..." */
} present_args;

static int present_fn(db_conn *c, void *ud) {
  present_args *a = ud;
  memset(a->present, 0, a->n * sizeof *a->present);
  db_param ps[] = {db_text(a->tid), db_text(a->list)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE sync.files SET last_used_at = now() "
                   "WHERE tenant_id = $1::uuid AND sha256 = ANY (SELECT "
                   "decode(h, 'hex') FROM unnest(string_to_array($2, ',')) h) "
                   "RETURNING encode(sha256, 'hex') AS hex",
                   ps, DB_NPARAMS(ps), &r);
  for (int i = 0; rc == ERR_OK && i < db_nrows(r); i++) {
    const char *hex = db_get(r, i, 0);
    for (size_t j = 0; hex != NULL && j < a->n; j++)
      if (memcmp(a->list + j * (HEX_LEN + 1), hex, HEX_LEN) == 0)
        a->present[j] = true;
  }
  db_result_free(r);
  return rc;
}

int store_files_present(store *st, const char *tid, const uint8_t *hashes,
                        size_t n, bool *present) {
  if (n == 0) return ERR_OK;
  if (n > 1000) return ERR_INVAL;
  present_args a = {.tid = tid, .hashes = hashes, .n = n, .present = present};
  a.list = malloc(n * (HEX_LEN + 1));
  if (a.list == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    sodium_bin2hex(a.list + i * (HEX_LEN + 1), HEX_LEN + 1,
                   hashes + i * STORE_FILE_HASH_LEN, STORE_FILE_HASH_LEN);
    if (i + 1 < n) a.list[i * (HEX_LEN + 1) + HEX_LEN] = ',';
  }
  int rc = run(st, tid, present_fn, &a);
  free(a.list);
  return rc;
}

/* ----------------------------------------------------------- expire --- */

typedef struct expire_args {
  int64_t ttl_ms;
  size_t batch, *removed;
  int64_t *bytes;
} expire_args;

static int expire_fn(db_conn *c, void *ud) {
  expire_args *a = ud;
  *a->removed = 0;
  *a->bytes = 0;
  db_param ps[] = {db_int64(a->ttl_ms), db_int64((int64_t)a->batch)};
  db_result *r = NULL;
  /* FOR UPDATE re-checks last_used_at on a row touched meanwhile, and
   * SKIP LOCKED leaves rows being read or uploaded to the next round. */
  int rc = db_exec(
      c,
      "WITH gone AS (DELETE FROM sync.files WHERE (tenant_id, sha256) IN ("
      "  SELECT tenant_id, sha256 FROM sync.files WHERE last_used_at < "
      "  now() - $1::bigint * interval '1 millisecond' "
      "  LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING tenant_id, size), "
      "per AS (SELECT tenant_id, sum(size)::bigint AS s FROM gone "
      "  GROUP BY tenant_id), "
      "upd AS (UPDATE sync.file_usage u SET bytes = u.bytes - per.s "
      "  FROM per WHERE u.tenant_id = per.tenant_id RETURNING 1) "
      "SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS bytes, "
      "  (SELECT count(*) FROM upd) AS tenants FROM gone",
      ps, DB_NPARAMS(ps), &r);
  int64_t n = 0;
  if (rc == ERR_OK &&
      (db_nrows(r) != 1 || db_get_int64(r, 0, 0, &n) != ERR_OK ||
       db_get_int64(r, 0, 1, a->bytes) != ERR_OK))
    rc = ERR_DB;
  db_result_free(r);
  *a->removed = (size_t)n;
  return rc;
}

int store_files_expire(store *st, int64_t ttl_ms, size_t batch, size_t *removed,
                       int64_t *bytes) {
  expire_args a = {.ttl_ms = ttl_ms,
                   .batch = batch ? batch : 100,
                   .removed = removed,
                   .bytes = bytes};
  /* Across tenants: the sweeper's policy (app.sync_sweeper). */
  return db_store_run(st, NULL, "app.sync_sweeper", false, expire_fn, &a);
}
