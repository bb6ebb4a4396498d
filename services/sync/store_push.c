/*
 * store_push.c - the SQL of push and conflicts (see store.h): the
 * per-device mutation record, the tenant's conflict policy, and the
 * conflicts kept under the manual policy. Same rules as store.c: one
 * transaction per function as the store's role with app.tenant_id set,
 * constant SQL with $n parameters, tenant_id on every statement, columns
 * by name; bytes leave the database as hex and are decoded here.
 */
#include "services/sync/store.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

static int run(store *st, const char *tid, bool read_only,
               int (*fn)(db_conn *c, void *ud), void *ud) {
  return db_store_run(st, tid, NULL, read_only, fn, ud);
}

/* The hex text of a cell as malloc'd bytes. */
static int unhex(const char *hex, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (hex == NULL) return ERR_DB;
  size_t cap = strlen(hex) / 2;
  uint8_t *b = malloc(cap ? cap : 1);
  if (b == NULL) return ERR_NOMEM;
  if (sodium_hex2bin(b, cap, hex, strlen(hex), NULL, len, NULL) != 0) {
    free(b);
    return ERR_DB;
  }
  *out = b;
  return ERR_OK;
}

/* ------------------------------------------------------ last mutation --- */

typedef struct last_args {
  const char *tid, *did;
  int64_t mid, *last;
  uint8_t **result;
  size_t *len;
} last_args;

static int last_fn(db_conn *c, void *ud) {
  last_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->did)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT last_mutation_id FROM sync.devices "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? db_get_int64(r, 0, 0, a->last) : ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_last_mutation(store *st, const char *tid, const char *did,
                        int64_t *last) {
  *last = 0;
  last_args a = {.tid = tid, .did = did, .last = last};
  return run(st, tid, true, last_fn, &a);
}

static int mutation_get_fn(db_conn *c, void *ud) {
  last_args *a = ud;
  free(*a->result);
  *a->result = NULL;
  db_param ps[] = {db_text(a->tid), db_text(a->did), db_int64(a->mid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT encode(result, 'hex') AS result FROM "
                   "sync.mutations WHERE tenant_id = $1::uuid AND "
                   "device_id = $2::uuid AND id = $3",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? unhex(db_get(r, 0, 0), a->result, a->len)
                          : ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_mutation_get(store *st, const char *tid, const char *did, int64_t mid,
                       uint8_t **result, size_t *len) {
  *result = NULL;
  *len = 0;
  last_args a = {
      .tid = tid, .did = did, .mid = mid, .result = result, .len = len};
  int rc = run(st, tid, true, mutation_get_fn, &a);
  if (rc != ERR_OK) {
    free(*result);
    *result = NULL;
  }
  return rc;
}

/* ------------------------------------------------------------- record --- */

typedef struct record_args {
  const char *tid, *did, *name, *status;
  int64_t mid;
  const uint8_t *result;
  size_t len;
  const store_conflict_new *conflict;
  const store_clock *clock;
  bool *recorded;
} record_args;

/* The entity's clock moves forward only (a later version's clock wins). */
static int upsert_clock(db_conn *c, const record_args *a) {
  const store_clock *k = a->clock;
  db_param ps[] = {db_text(a->tid), db_text(k->entity), db_text(k->entity_id),
                   db_int64(k->version), db_text(k->hlc)};
  return db_exec(c,
                 "INSERT INTO sync.entity_clocks (tenant_id, entity, "
                 "entity_id, version, hlc) VALUES ($1::uuid, $2, $3::uuid, "
                 "$4, $5) ON CONFLICT (tenant_id, entity, entity_id) DO "
                 "UPDATE SET version = EXCLUDED.version, hlc = EXCLUDED.hlc "
                 "WHERE entity_clocks.version < EXCLUDED.version",
                 ps, DB_NPARAMS(ps), NULL);
}

static int insert_conflict(db_conn *c, const record_args *a) {
  const store_conflict_new *k = a->conflict;
  char id[UUID_STR_LEN + 1];
  int64_t id_ms = uuid_v7_str(id);
  db_param ps[] = {db_text(a->tid),
                   db_text(id),
                   db_text(a->did),
                   db_int64(a->mid),
                   db_text(k->entity),
                   db_text(k->entity_id),
                   db_bytes(k->client, k->client_len),
                   db_bytes(k->server, k->server_len),
                   db_int64(id_ms)};
  return db_exec(c,
                 "INSERT INTO sync.conflicts (tenant_id, id, device_id, "
                 "mutation_id, entity, entity_id, client, server, created_at) "
                 "VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6::uuid, $7, "
                 "$8, timestamptz 'epoch' + $9::bigint * interval "
                 "'1 millisecond')",
                 ps, DB_NPARAMS(ps), NULL);
}

static int record_fn(db_conn *c, void *ud) {
  record_args *a = ud;
  *a->recorded = false;
  db_param adv[] = {db_text(a->tid), db_text(a->did), db_int64(a->mid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE sync.devices SET last_mutation_id = $3 "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid AND "
                   "last_mutation_id = $3 - 1",
                   adv, DB_NPARAMS(adv), &r);
  bool moved = rc == ERR_OK && db_affected(r) == 1;
  db_result_free(r);
  if (rc != ERR_OK || !moved) return rc;
  db_param ps[] = {db_text(a->tid),    db_text(a->did),
                   db_int64(a->mid),   db_text(a->name),
                   db_text(a->status), db_bytes(a->result, a->len)};
  rc = db_exec(c,
               "INSERT INTO sync.mutations (tenant_id, device_id, id, name, "
               "status, result) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6)",
               ps, DB_NPARAMS(ps), NULL);
  if (rc == ERR_OK && a->conflict != NULL) rc = insert_conflict(c, a);
  if (rc == ERR_OK && a->clock != NULL) rc = upsert_clock(c, a);
  if (rc == ERR_OK) *a->recorded = true;
  return rc;
}

int store_mutation_record(store *st, const char *tid, const char *did,
                          int64_t mid, const char *name, const char *status,
                          const uint8_t *result, size_t len,
                          const store_conflict_new *conflict,
                          const store_clock *clock, bool *recorded) {
  record_args a = {.tid = tid,
                   .did = did,
                   .name = name,
                   .status = status,
                   .mid = mid,
                   .result = result,
                   .len = len,
                   .conflict = conflict,
                   .clock = clock,
                   .recorded = recorded};
  return run(st, tid, false, record_fn, &a);
}

typedef struct clock_args {
  const char *tid, *entity, *id;
  int64_t *version;
  char *out;
  size_t cap;
} clock_args;

static int clock_fn(db_conn *c, void *ud) {
  clock_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->entity), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT version, hlc FROM sync.entity_clocks WHERE "
                   "tenant_id = $1::uuid AND entity = $2 AND entity_id = "
                   "$3::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) rc = db_get_int64(r, 0, 0, a->version);
  if (rc == ERR_OK) str_copy(a->out, db_get(r, 0, 1), a->cap);
  db_result_free(r);
  return rc;
}

int store_clock_get(store *st, const char *tid, const char *entity,
                    const char *id, int64_t *version, char *out, size_t cap) {
  clock_args a = {.tid = tid,
                  .entity = entity,
                  .id = id,
                  .version = version,
                  .out = out,
                  .cap = cap};
  return run(st, tid, true, clock_fn, &a);
}

/* ------------------------------------------------------------- policy --- */

typedef struct policy_args {
  const char *tid, *set;
  char *out;
} policy_args;

static int policy_fn(db_conn *c, void *ud) {
  policy_args *a = ud;
  db_result *r = NULL;
  int rc;
  if (a->set != NULL) {
    db_param ps[] = {db_text(a->tid), db_text(a->set)};
    rc = db_exec(c,
                 "INSERT INTO sync.settings (tenant_id, conflict_policy) "
                 "VALUES ($1::uuid, $2) ON CONFLICT (tenant_id) DO UPDATE "
                 "SET conflict_policy = EXCLUDED.conflict_policy",
                 ps, DB_NPARAMS(ps), NULL);
    if (rc != ERR_OK) return rc;
  }
  db_param ps[] = {db_text(a->tid)};
  rc = db_exec(c,
               "SELECT conflict_policy FROM sync.settings "
               "WHERE tenant_id = $1::uuid",
               ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    str_copy(a->out, db_nrows(r) == 1 ? db_get(r, 0, 0) : "server_wins",
             STORE_POLICY_MAX + 1);
  db_result_free(r);
  return rc;
}

int store_policy_get(store *st, const char *tid,
                     char out[STORE_POLICY_MAX + 1]) {
  policy_args a = {.tid = tid, .out = out};
  return run(st, tid, true, policy_fn, &a);
}

int store_policy_set(store *st, const char *tid, const char *policy) {
  char out[STORE_POLICY_MAX + 1];
  policy_args a = {.tid = tid, .set = policy, .out = out};
  return run(st, tid, false, policy_fn, &a);
}

/* ---------------------------------------------------------- conflicts --- */

#define CONFLICT_COLS                                                          \
  "id::text AS id, device_id::text AS device_id, mutation_id, entity, "        \
  "entity_id::text AS entity_id, encode(client, 'hex') AS client, "            \
  "encode(server, 'hex') AS server, "                                          \
  "floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms"

void store_conflicts_free(store_conflict *v, size_t n) {
  for (size_t i = 0; v != NULL && i < n; i++) {
    free(v[i].client);
    free(v[i].server);
    v[i].client = v[i].server = NULL;
  }
}

static int read_conflict(const db_result *r, int row, store_conflict *o) {
  memset(o, 0, sizeof *o);
#define COPY(field, col)                                                       \
  db_copy_cell(r, row, db_col(r, col), o->field, sizeof o->field)
  COPY(id, "id");
  COPY(device_id, "device_id");
  COPY(entity, "entity");
  COPY(entity_id, "entity_id");
#undef COPY
  int64_t ms = 0;
  int rc = db_get_int64(r, row, db_col(r, "mutation_id"), &o->mutation_id);
  if (rc == ERR_OK) rc = db_get_int64(r, row, db_col(r, "created_ms"), &ms);
  if (rc == ERR_OK) rc = time_format_rfc3339(ms, o->created_at);
  if (rc == ERR_OK)
    rc = unhex(db_get(r, row, db_col(r, "client")), &o->client, &o->client_len);
  if (rc == ERR_OK)
    rc = unhex(db_get(r, row, db_col(r, "server")), &o->server, &o->server_len);
  if (rc != ERR_OK) store_conflicts_free(o, 1);
  return rc;
}

typedef struct conflicts_args {
  const char *tid, *id, *how;
  store_conflict *out;
  size_t cap, *n;
} conflicts_args;

static int conflicts_fn(db_conn *c, void *ud) {
  conflicts_args *a = ud;
  store_conflicts_free(a->out, *a->n);
  *a->n = 0;
  db_param ps[] = {db_text(a->tid), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " CONFLICT_COLS " FROM sync.conflicts "
                   "WHERE tenant_id = $1::uuid AND resolved_at IS NULL "
                   "ORDER BY id LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  for (int i = 0; rc == ERR_OK && i < db_nrows(r) && (size_t)i < a->cap; i++) {
    rc = read_conflict(r, i, &a->out[i]);
    if (rc == ERR_OK) *a->n = (size_t)i + 1;
  }
  db_result_free(r);
  return rc;
}

int store_conflicts_list(store *st, const char *tid, store_conflict *out,
                         size_t cap, size_t *n) {
  *n = 0;
  if (cap > STORE_CONFLICTS_MAX) cap = STORE_CONFLICTS_MAX;
  conflicts_args a = {.tid = tid, .out = out, .cap = cap, .n = n};
  int rc = run(st, tid, true, conflicts_fn, &a);
  if (rc != ERR_OK) {
    store_conflicts_free(out, *n);
    *n = 0;
  }
  return rc;
}

static int conflict_get_fn(db_conn *c, void *ud) {
  conflicts_args *a = ud;
  store_conflicts_free(a->out, 1);
  memset(a->out, 0, sizeof *a->out);
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " CONFLICT_COLS " FROM sync.conflicts "
                   "WHERE tenant_id = $1::uuid AND id = $2::uuid AND "
                   "resolved_at IS NULL",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK)
    rc = db_nrows(r) == 1 ? read_conflict(r, 0, a->out) : ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_conflict_get(store *st, const char *tid, const char *id,
                       store_conflict *out) {
  memset(out, 0, sizeof *out);
  conflicts_args a = {.tid = tid, .id = id, .out = out};
  return run(st, tid, true, conflict_get_fn, &a);
}

static int resolve_fn(db_conn *c, void *ud) {
  conflicts_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id), db_text(a->how)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE sync.conflicts SET resolved_at = now(), "
                   "resolution = $3 WHERE tenant_id = $1::uuid AND "
                   "id = $2::uuid AND resolved_at IS NULL",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_affected(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_conflict_resolve(store *st, const char *tid, const char *id,
                           const char *how) {
  conflicts_args a = {.tid = tid, .id = id, .how = how};
  return run(st, tid, false, resolve_fn, &a);
}

/* ---------------------------------------------------------- retention --- */

typedef struct prune_args {
  int64_t older_ms, batch, *deleted;
} prune_args;

static int prune_fn(db_conn *c, void *ud) {
  prune_args *a = ud;
  db_param ps[] = {db_int64(a->older_ms), db_int64(a->batch)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "WITH gone AS (DELETE FROM sync.mutations WHERE ctid IN ("
                   "  SELECT ctid FROM sync.mutations WHERE created_at < "
                   "  now() - $1::bigint * interval '1 millisecond' "
                   "  LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) "
                   "SELECT count(*) FROM gone",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) == 1) rc = db_get_int64(r, 0, 0, a->deleted);
  db_result_free(r);
  return rc;
}

int store_prune_mutations(store *st, int64_t older_ms, size_t batch,
                          int64_t *deleted) {
  *deleted = 0;
  prune_args a = {older_ms, (int64_t)(batch ? batch : 1000), deleted};
  /* Across tenants: the sweeper's own policy (app.sync_sweeper). */
  return db_store_run(st, NULL, "app.sync_sweeper", false, prune_fn, &a);
}
