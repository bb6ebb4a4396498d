/*
 * store_files.c - see store_files.h. Same shape as store.c: each public
 * function is an argument struct plus a static function run by db_store_run
 * (parameterised SQL, the tenant's RLS scope, whole-unit retries).
 *
 * Uploads are store_uploads.c's (parts, then the file in one statement);
 * they use the touch and the usage helpers here: an upload adds its size
 * to the tenant's usage only while it stays within quota (one conditional
 * UPDATE, which also serialises the tenant's concurrent uploads on that
 * row), and gives it back when it does not end as a new file.
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

/* ------------------------------------------------------------- read --- */

typedef struct read_args {
  const char *tid;
  const uint8_t *hash;
  int64_t offset, max, *size;
  uint8_t **data;
  size_t *len;
} read_args;

/* offset 0 is the start of a download (or a HEAD): the file is used, so
 * last_used_at moves; later offsets only read, without a write per chunk.
 * substring() of an uncompressed out-of-line value fetches only the TOAST
 * chunks under the slice (ADR 0018, "Streaming"). */
static int read_fn(db_conn *c, void *ud) {
  read_args *a = ud;
  free(*a->data);
  *a->data = NULL;
  *a->len = 0;
  db_param ps[] = {db_text(a->tid), db_bytes(a->hash, STORE_FILE_HASH_LEN),
                   db_int64(a->offset + 1), db_int64(a->max)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      a->offset == 0
          ? "UPDATE sync.files SET last_used_at = now() "
            "WHERE tenant_id = $1::uuid AND sha256 = $2 RETURNING size, "
            "substring(content FROM $3::int FOR $4::int)"
          : "SELECT size, substring(content FROM $3::int FOR $4::int) "
            "FROM sync.files WHERE tenant_id = $1::uuid AND sha256 = $2",
      ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  if (rc == ERR_OK && db_get_int64(r, 0, 0, a->size) != ERR_OK) rc = ERR_DB;
  if (rc == ERR_OK) rc = db_get_bytes(r, 0, 1, a->data, a->len);
  db_result_free(r);
  return rc;
}

int store_file_read(store *st, const char *tid,
                    const uint8_t hash[STORE_FILE_HASH_LEN], int64_t offset,
                    int64_t max, int64_t *size, uint8_t **data, size_t *len) {
  *data = NULL;
  *len = 0;
  *size = 0;
  if (offset < 0 || max < 0 || max > STORE_FILE_PART_MAX) return ERR_INVAL;
  /* substring() takes an int: any offset past the largest file reads
   * nothing, which the caller sees as offset > size. */
  if (offset > STORE_FILE_MAX) offset = STORE_FILE_MAX + 1;
  read_args a = {.tid = tid,
                 .hash = hash,
                 .offset = offset,
                 .max = max,
                 .size = size,
                 .data = data,
                 .len = len};
  int rc = db_store_run(st, tid, NULL, offset != 0, read_fn, &a);
  if (rc != ERR_OK) {
    free(*data);
    *data = NULL;
    *len = 0;
  }
  return rc;
}

/* ------------------------------------------------------ touch, usage --- */

/* The statement's one row, or none (ERR_OK with *hit false). */
static int exec_hit(db_conn *c, const char *sql, const db_param *ps, int n,
                    bool *hit) {
  db_result *r = NULL;
  int rc = db_exec(c, sql, ps, n, &r);
  *hit = rc == ERR_OK && db_nrows(r) == 1;
  db_result_free(r);
  return rc;
}

int store_file_touch(db_conn *c, const char *tid,
                     const uint8_t hash[STORE_FILE_HASH_LEN], bool *hit,
                     int64_t *size) {
  *hit = false;
  db_param key[] = {db_text(tid), db_bytes(hash, STORE_FILE_HASH_LEN)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE sync.files SET last_used_at = now() "
                   "WHERE tenant_id = $1::uuid AND sha256 = $2 RETURNING size",
                   key, DB_NPARAMS(key), &r);
  if (rc == ERR_OK && db_nrows(r) == 1) {
    *hit = true;
    if (size != NULL && db_get_int64(r, 0, 0, size) != ERR_OK) rc = ERR_DB;
  }
  db_result_free(r);
  return rc;
}

int store_usage_reserve(db_conn *c, const char *tid, int64_t bytes,
                        int64_t quota) {
  db_param use[] = {db_text(tid), db_int64(bytes), db_int64(quota)};
  int rc = db_exec(c,
                   "INSERT INTO sync.file_usage (tenant_id) VALUES ($1::uuid) "
                   "ON CONFLICT (tenant_id) DO NOTHING",
                   use, 1, NULL);
  bool hit = false;
  if (rc == ERR_OK)
    rc = exec_hit(c,
                  "UPDATE sync.file_usage SET bytes = bytes + $2::bigint "
                  "WHERE tenant_id = $1::uuid AND bytes + $2::bigint <= "
                  "$3::bigint RETURNING 1",
                  use, DB_NPARAMS(use), &hit);
  return rc == ERR_OK && !hit ? ERR_TOOBIG : rc;
}

int store_usage_release(db_conn *c, const char *tid, int64_t bytes) {
  db_param use[] = {db_text(tid), db_int64(bytes)};
  return db_exec(c,
                 "UPDATE sync.file_usage SET bytes = bytes - $2::bigint "
                 "WHERE tenant_id = $1::uuid",
                 use, DB_NPARAMS(use), NULL);
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
