/*
 * store_uploads.c - see store_uploads.h. Same shape as store_files.c: an
 * argument struct plus a static function run by db_store_run (one
 * transaction in the tenant's RLS scope, retried whole on a deadlock or
 * serialisation failure - so the function recomputes everything from
 * what it reads and keeps nothing outside the database).
 *
 * A part, in its transaction:
 *   1. lock the upload's row (FOR UPDATE, tenant-filtered): concurrent
 *      sends of the same upload (a retry racing its original, two
 *      replicas) take turns, and each sees the other's result;
 *   2. no row and offset 0: the file exists -> touch it, EXISTED; else
 *      insert the row (ON CONFLICT on the id: a racing twin of this first
 *      part inserted it, and step 1 again finds it) and reserve the size
 *      (over quota: ERR_TOOBIG, which rolls the insert back too);
 *   3. offset == received: hash the bytes into the state read from the
 *      row, keep the part, write the state and received back; at size,
 *      finish (store the file, or drop everything on a mismatch).
 * A refused last part must still commit its deletions, so verdicts
 * (GAP, OTHER, MISMATCH) return ERR_OK with a status; only errors roll
 * back.
 */
#include "services/sync/store_uploads.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef crypto_hash_sha256_state hash_state;

typedef struct part_args {
  const store_part *p;
  store_part_result *out;
} part_args;

/* The upload's row as step 1 read it. */
typedef struct upload_row {
  bool found, same_file, stored;
  int64_t received;
  hash_state state;
} upload_row;

/* The stored state is the raw struct of the libsodium this process was
 * built with; another length (another libsodium) is refused rather than
 * misread. */
static int state_load(const db_result *r, int col, hash_state *out) {
  unsigned char *b = NULL;
  size_t n = 0;
  int rc = db_get_bytes(r, 0, col, &b, &n);
  if (rc != ERR_OK) return rc;
  if (n != sizeof *out || crypto_hash_sha256_statebytes() != sizeof *out)
    rc = ERR_INTERNAL;
  else
    memcpy(out, b, sizeof *out);
  free(b);
  return rc;
}

static int lock_upload(db_conn *c, const store_part *p, upload_row *row) {
  memset(row, 0, sizeof *row);
  db_param ps[] = {db_text(p->tid), db_text(p->upload_id),
                   db_bytes(p->hash, STORE_FILE_HASH_LEN), db_int64(p->size)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT received, stored_at IS NOT NULL AS stored, "
                   "sha256 = $3 AND size = $4::bigint AS same, hash_state "
                   "FROM sync.uploads WHERE tenant_id = $1::uuid "
                   "AND id = $2::uuid FOR UPDATE",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) == 1) {
    row->found = true;
    if (db_get_int64(r, 0, 0, &row->received) != ERR_OK ||
        db_get_bool(r, 0, 1, &row->stored) != ERR_OK ||
        db_get_bool(r, 0, 2, &row->same_file) != ERR_OK)
      rc = ERR_DB;
    if (rc == ERR_OK && row->same_file && !row->stored)
      rc = state_load(r, 3, &row->state);
  }
  db_result_free(r);
  return rc;
}

/* Step 2: a first part without a row. ERR_OK with out->status EXISTED, or
 * with the row inserted (or found: a twin) and locked in *row. */
static int begin_upload(db_conn *c, const store_part *p, store_part_result *out,
                        upload_row *row) {
  bool hit = false;
  int rc = store_file_touch(c, p->tid, p->hash, &hit, &out->size);
  if (rc != ERR_OK) return rc;
  if (hit) {
    out->status = STORE_PART_EXISTED;
    out->existed = true;
    out->received = out->size;
    return ERR_OK;
  }
  hash_state st;
  crypto_hash_sha256_init(&st);
  db_param ps[] = {db_text(p->upload_id), db_text(p->tid),
                   db_bytes(p->hash, STORE_FILE_HASH_LEN), db_int64(p->size),
                   db_bytes(&st, sizeof st)};
  db_result *r = NULL;
  rc = db_exec(c,
               "INSERT INTO sync.uploads (id, tenant_id, sha256, size, "
               "hash_state) VALUES ($1::uuid, $2::uuid, $3, $4::bigint, $5) "
               "ON CONFLICT (id) DO NOTHING RETURNING 1",
               ps, DB_NPARAMS(ps), &r);
  bool inserted = rc == ERR_OK && db_nrows(r) == 1;
  db_result_free(r);
  if (rc == ERR_OK && inserted)
    rc = store_usage_reserve(c, p->tid, p->size, p->quota);
  if (rc == ERR_OK) rc = lock_upload(c, p, row);
  /* Not inserted and not visible: the id is another tenant's upload. */
  if (rc == ERR_OK && !row->found) rc = ERR_NOTFOUND;
  return rc;
}

/* An offset below received: an exact re-send (a part kept at that offset
 * with that length) is REPEATED, anything else a GAP. */
static int check_repeat(db_conn *c, const store_part *p,
                        store_part_result *out) {
  db_param ps[] = {db_text(p->tid), db_text(p->upload_id), db_int64(p->offset),
                   db_int64((int64_t)p->len)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT 1 FROM sync.upload_parts WHERE tenant_id = $1::uuid "
                   "AND upload_id = $2::uuid AND \"offset\" = $3::bigint "
                   "AND octet_length(data) = $4::bigint",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    out->status = db_nrows(r) == 1 ? STORE_PART_REPEATED : STORE_PART_GAP;
  db_result_free(r);
  return rc;
}

/* The hash matched: the parts become the file (unless the tenant got it
 * meanwhile from another upload: then this reservation goes back), the
 * parts go, and the row stays, stored, for re-sent last parts. */
static int store_file_from_parts(db_conn *c, const store_part *p,
                                 store_part_result *out) {
  db_param ps[] = {db_text(p->tid), db_bytes(p->hash, STORE_FILE_HASH_LEN),
                   db_int64(p->size), db_text(p->upload_id)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      "INSERT INTO sync.files (tenant_id, sha256, size, content) "
      "SELECT $1::uuid, $2, $3::bigint, "
      "coalesce(string_agg(data, ''::bytea ORDER BY \"offset\"), ''::bytea) "
      "FROM sync.upload_parts WHERE tenant_id = $1::uuid "
      "AND upload_id = $4::uuid "
      "ON CONFLICT (tenant_id, sha256) DO UPDATE SET last_used_at = now() "
      "RETURNING (xmax = 0) AS inserted",
      ps, DB_NPARAMS(ps), &r);
  bool inserted = true;
  if (rc == ERR_OK && db_get_bool(r, 0, 0, &inserted) != ERR_OK) rc = ERR_DB;
  db_result_free(r);
  if (rc == ERR_OK && !inserted) {
    out->existed = true;
    rc = store_usage_release(c, p->tid, p->size);
  }
  db_param up[] = {db_text(p->tid), db_text(p->upload_id)};
  if (rc == ERR_OK)
    rc = db_exec(c,
                 "DELETE FROM sync.upload_parts WHERE tenant_id = $1::uuid "
                 "AND upload_id = $2::uuid",
                 up, DB_NPARAMS(up), NULL);
  if (rc == ERR_OK)
    rc = db_exec(c,
                 "UPDATE sync.uploads SET received = size, hash_state = "
                 "''::bytea, stored_at = now(), updated_at = now() "
                 "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                 up, DB_NPARAMS(up), NULL);
  out->status = STORE_PART_STORED;
  out->received = p->size;
  return rc;
}

/* The hash is not the name: nothing of the upload stays. */
static int drop_upload(db_conn *c, const store_part *p,
                       store_part_result *out) {
  db_param up[] = {db_text(p->tid), db_text(p->upload_id)};
  int rc = db_exec(c,
                   "DELETE FROM sync.upload_parts WHERE tenant_id = $1::uuid "
                   "AND upload_id = $2::uuid",
                   up, DB_NPARAMS(up), NULL);
  if (rc == ERR_OK)
    rc = db_exec(c,
                 "DELETE FROM sync.uploads WHERE tenant_id = $1::uuid "
                 "AND id = $2::uuid",
                 up, DB_NPARAMS(up), NULL);
  if (rc == ERR_OK) rc = store_usage_release(c, p->tid, p->size);
  out->status = STORE_PART_MISMATCH;
  out->received = 0;
  return rc;
}

/* Step 3: the part at received. */
static int append(db_conn *c, const store_part *p, upload_row *row,
                  store_part_result *out) {
  crypto_hash_sha256_update(&row->state, p->data, p->len);
  int64_t received = row->received + (int64_t)p->len;
  int rc = ERR_OK;
  if (p->len > 0) {
    db_param ps[] = {db_text(p->tid), db_text(p->upload_id),
                     db_int64(p->offset), db_bytes(p->data, p->len)};
    rc = db_exec(c,
                 "INSERT INTO sync.upload_parts (tenant_id, upload_id, "
                 "\"offset\", data) VALUES ($1::uuid, $2::uuid, $3::bigint, "
                 "$4)",
                 ps, DB_NPARAMS(ps), NULL);
  }
  if (rc != ERR_OK) return rc;
  if (received < p->size) {
    db_param ps[] = {db_text(p->tid), db_text(p->upload_id), db_int64(received),
                     db_bytes(&row->state, sizeof row->state)};
    out->status = STORE_PART_APPLIED;
    out->received = received;
    return db_exec(c,
                   "UPDATE sync.uploads SET received = $3::bigint, "
                   "hash_state = $4, updated_at = now() "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), NULL);
  }
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&row->state, digest);
  if (sodium_memcmp(digest, p->hash, sizeof digest) == 0)
    return store_file_from_parts(c, p, out);
  return drop_upload(c, p, out);
}

static int part_fn(db_conn *c, void *ud) {
  part_args *a = ud;
  const store_part *p = a->p;
  store_part_result *out = a->out;
  memset(out, 0, sizeof *out);
  out->size = p->size;
  upload_row row;
  int rc = lock_upload(c, p, &row);
  if (rc == ERR_OK && !row.found)
    rc = p->offset == 0 ? begin_upload(c, p, out, &row) : ERR_NOTFOUND;
  if (rc != ERR_OK || out->status == STORE_PART_EXISTED) return rc;
  out->received = row.received;
  if (!row.same_file) {
    out->status = STORE_PART_OTHER;
    return ERR_OK;
  }
  if (row.stored) {
    out->status = STORE_PART_DONE;
    return ERR_OK;
  }
  if (p->offset == row.received) return append(c, p, &row, out);
  if (p->offset < row.received) return check_repeat(c, p, out);
  out->status = STORE_PART_GAP;
  return ERR_OK;
}

int store_upload_part(store *st, const store_part *p, store_part_result *out) {
  if (p == NULL || out == NULL || p->size < 0 || p->size > STORE_FILE_MAX ||
      p->offset < 0 || p->len > (size_t)STORE_FILE_PART_MAX ||
      p->offset + (int64_t)p->len > p->size || (p->len == 0 && p->size > 0))
    return ERR_INVAL;
  part_args a = {.p = p, .out = out};
  return db_store_run(st, p->tid, NULL, false, part_fn, &a);
}

/* ----------------------------------------------------------- expire --- */

typedef struct expire_args {
  int64_t idle_ms, batch;
  size_t *removed;
  int64_t *released;
} expire_args;

static int expire_fn(db_conn *c, void *ud) {
  expire_args *a = ud;
  *a->removed = 0;
  *a->released = 0;
  db_param ps[] = {db_int64(a->idle_ms), db_int64(a->batch)};
  db_result *r = NULL;
  /* FOR UPDATE re-checks updated_at on a row a part advanced meanwhile;
   * SKIP LOCKED leaves uploads taking a part to the next round. Parts go
   * with their upload (ON DELETE CASCADE). */
  int rc = db_exec(
      c,
      "WITH gone AS (DELETE FROM sync.uploads WHERE id IN ("
      "  SELECT id FROM sync.uploads WHERE updated_at < "
      "  now() - $1::bigint * interval '1 millisecond' "
      "  LIMIT $2 FOR UPDATE SKIP LOCKED) "
      "  RETURNING tenant_id, size, stored_at), "
      "per AS (SELECT tenant_id, sum(size)::bigint AS s FROM gone "
      "  WHERE stored_at IS NULL GROUP BY tenant_id), "
      "upd AS (UPDATE sync.file_usage u SET bytes = u.bytes - per.s "
      "  FROM per WHERE u.tenant_id = per.tenant_id RETURNING 1) "
      "SELECT count(*) AS n, coalesce(sum(size) FILTER (WHERE stored_at IS "
      "  NULL), 0)::bigint AS released, (SELECT count(*) FROM upd) AS t "
      "FROM gone",
      ps, DB_NPARAMS(ps), &r);
  int64_t n = 0;
  if (rc == ERR_OK &&
      (db_nrows(r) != 1 || db_get_int64(r, 0, 0, &n) != ERR_OK ||
       db_get_int64(r, 0, 1, a->released) != ERR_OK))
    rc = ERR_DB;
  db_result_free(r);
  *a->removed = (size_t)n;
  return rc;
}

int store_uploads_expire(store *st, int64_t idle_ms, size_t batch,
                         size_t *removed, int64_t *released) {
  expire_args a = {.idle_ms = idle_ms,
                   .batch = (int64_t)(batch ? batch : 100),
                   .removed = removed,
                   .released = released};
  /* Across tenants: the sweeper's policy (app.sync_sweeper). */
  return db_store_run(st, NULL, "app.sync_sweeper", false, expire_fn, &a);
}
