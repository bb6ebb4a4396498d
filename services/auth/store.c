/*
 * store.c - the auth service's SQL (see store.h).
 *
 * Shape: each public function packs its arguments into a small struct and
 * runs one callback inside store_tx, which is db_with_tx (acquire, BEGIN
 * with app.tenant_id and the service's non-superuser role - libs/db's
 * db_tx_opts.role, the parameterised SET LOCAL ROLE - commit, retry on
 * deadlock/serialisation failure). Callbacks therefore never keep state
 * outside the database: they may run more than once.
 *
 * Every statement is a constant string; every value a parameter; every
 * table qualified with the schema (service connections do not set a
 * search_path).
 */
#include "services/auth/store.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

/* The columns every user query returns, in this order. */
#define USER_COLS                                                              \
  "u.id::text, u.tenant_id::text, u.email, u.name, u.role, "                   \
  "to_char(u.created_at AT TIME ZONE 'UTC', "                                  \
  "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), u.disabled, "                         \
  "COALESCE((extract(epoch FROM u.tokens_valid_after) * 1000)::bigint, 0), "   \
  "u.password_hash, COALESCE(u.phone, '')"
#define USER_NCOLS 10 /* a column after USER_COLS is number USER_NCOLS */

/* Copies row r of a USER_COLS result into *u; the hash only if asked. */
static int user_from_row(const db_result *res, int r, auth_user *u,
                         bool with_hash) {
  memset(u, 0, sizeof *u);
  const char *v;
  if ((v = db_get(res, r, 0)) == NULL) return ERR_DB;
  str_copy(u->id, v, sizeof u->id);
  if ((v = db_get(res, r, 1)) == NULL) return ERR_DB;
  str_copy(u->tenant_id, v, sizeof u->tenant_id);
  if ((v = db_get(res, r, 2)) == NULL) return ERR_DB;
  str_copy(u->email, v, sizeof u->email);
  if ((v = db_get(res, r, 3)) == NULL) return ERR_DB;
  str_copy(u->name, v, sizeof u->name);
  if ((v = db_get(res, r, 4)) == NULL) return ERR_DB;
  str_copy(u->role, v, sizeof u->role);
  if ((v = db_get(res, r, 5)) == NULL) return ERR_DB;
  str_copy(u->created_at, v, sizeof u->created_at);
  if (db_get_bool(res, r, 6, &u->disabled) != ERR_OK) return ERR_DB;
  if (db_get_int64(res, r, 7, &u->tokens_valid_after_ms) != ERR_OK)
    return ERR_DB;
  if ((v = db_get(res, r, 9)) == NULL) return ERR_DB;
  str_copy(u->phone, v, sizeof u->phone);
  if (with_hash) {
    if ((v = db_get(res, r, 8)) == NULL) return ERR_DB;
    if (str_copy(u->password_hash, v, sizeof u->password_hash) >=
        sizeof u->password_hash)
      return ERR_DB;
  }
  return ERR_OK;
}

int store_new(db_pool *db, const char *role, store **out) {
  return db_store_new(db, role, out);
}

void store_free(store *s) { db_store_free(s); }

/* ------------------------------------------------------- transactions --- */

static int store_tx(store *s, const char *tenant, bool read_only,
                    int (*fn)(db_conn *c, void *ud), void *ud) {
  return db_store_run(s, tenant, NULL, read_only, fn, ud);
}

/* Runs one query expected to return 0 or 1 user row. */
static int one_user(db_conn *c, const char *sql, const db_param *p, int np,
                    auth_user *out, bool with_hash) {
  db_result *res = NULL;
  int rc = db_exec(c, sql, p, np, &res);
  if (rc == ERR_OK)
    rc = db_nrows(res) == 0 ? ERR_NOTFOUND
                            : user_from_row(res, 0, out, with_hash);
  db_result_free(res);
  return rc;
}

/* ------------------------------------------------------------- users --- */

typedef struct ins_args {
  const char *tenant;
  const auth_user *in;
  const store_creation *cr;
  bool *key_conflict;
  auth_user *out;
} ins_args;

static int ins_fn(db_conn *c, void *ud) {
  ins_args *a = ud;
  const store_creation *cr = a->cr;
  db_param p[] = {db_text(a->in->id),
                  db_text(a->tenant),
                  db_text(a->in->email),
                  db_text(a->in->name),
                  db_text(a->in->role),
                  db_text(a->in->password_hash),
                  db_text(cr ? cr->principal : NULL),
                  db_text(cr ? cr->key : NULL),
                  cr && cr->hash ? db_bytes(cr->hash, STORE_REQHASH_LEN)
                                 : db_text(NULL),
                  db_text(a->in->phone[0] ? a->in->phone : NULL)};
  int rc = one_user(c,
                    "INSERT INTO auth.users AS u (id, tenant_id, email, name, "
                    "role, password_hash, creation_principal, creation_key, "
                    "creation_hash, phone) VALUES ($1, $2, $3, $4, $5, $6, "
                    "$7, $8, $9::bytea, $10) RETURNING " USER_COLS,
                    p, DB_NPARAMS(p), a->out, false);
  if (rc == ERR_EXISTS)
    *a->key_conflict =
        strstr(db_last_error()->constraint, "creation_key") != NULL;
  return rc;
}

int store_user_insert(store *s, const char *tenant, const auth_user *in,
                      const store_creation *creation, bool *key_conflict,
                      auth_user *out) {
  bool kc = false;
  if (creation != NULL &&
      (creation->key == NULL || creation->key[0] == '\0' ||
       creation->principal == NULL || creation->principal[0] == '\0'))
    creation = NULL;
  ins_args a = {tenant, in, creation, &kc, out};
  int rc = store_tx(s, tenant, false, ins_fn, &a);
  if (key_conflict != NULL) *key_conflict = kc;
  return rc;
}

typedef struct ckey_args {
  const char *tenant;
  const char *principal;
  const char *key;
  auth_user *out;
  uint8_t *hash;
  bool *has_hash;
} ckey_args;

static int ckey_fn(db_conn *c, void *ud) {
  ckey_args *a = ud;
  db_param p[] = {db_text(a->tenant), db_text(a->principal), db_text(a->key)};
  db_result *res = NULL;
  int rc = db_exec(c,
                   "SELECT " USER_COLS ", u.creation_hash FROM auth.users u "
                   "WHERE u.tenant_id = $1 AND u.creation_principal = $2 "
                   "AND u.creation_key = $3",
                   p, DB_NPARAMS(p), &res);
  if (rc == ERR_OK && db_nrows(res) == 0) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) rc = user_from_row(res, 0, a->out, false);
  *a->has_hash = false;
  if (rc == ERR_OK && !db_is_null(res, 0, USER_NCOLS)) {
    unsigned char *h = NULL;
    size_t n = 0;
    rc = db_get_bytes(res, 0, USER_NCOLS, &h, &n);
    if (rc == ERR_OK && n == STORE_REQHASH_LEN) {
      memcpy(a->hash, h, n);
      *a->has_hash = true;
    }
    free(h);
  }
  db_result_free(res);
  return rc;
}

int store_user_by_creation_key(store *s, const char *tenant,
                               const char *principal, const char *key,
                               auth_user *out, uint8_t hash[STORE_REQHASH_LEN],
                               bool *has_hash) {
  ckey_args a = {tenant, principal, key, out, hash, has_hash};
  return store_tx(s, tenant, true, ckey_fn, &a);
}

typedef struct get_args {
  const char *tenant;
  const char *value;
  const char *sql;
  bool with_hash;
  auth_user *out;
} get_args;

static int get_fn(db_conn *c, void *ud) {
  get_args *a = ud;
  db_param p[] = {db_text(a->tenant), db_text(a->value)};
  return one_user(c, a->sql, p, 2, a->out, a->with_hash);
}

static int get_user(store *s, const char *tenant, const char *value,
                    const char *sql, bool with_hash, auth_user *out) {
  get_args a = {tenant, value, sql, with_hash, out};
  return store_tx(s, tenant, true, get_fn, &a);
}

int store_user_by_email(store *s, const char *tenant, const char *email,
                        auth_user *out) {
  return get_user(s, tenant, email,
                  "SELECT " USER_COLS " FROM auth.users u "
                  "WHERE u.tenant_id = $1 AND u.email = $2",
                  true, out);
}

int store_user_by_id(store *s, const char *tenant, const char *id,
                     auth_user *out) {
  return get_user(s, tenant, id,
                  "SELECT " USER_COLS " FROM auth.users u "
                  "WHERE u.tenant_id = $1 AND u.id = $2",
                  false, out);
}

typedef struct list_args {
  const char *tenant;
  bool customers;
  const char *after;
  int limit;
  auth_user *out;
  int *n;
  bool *more;
  const char *roles; /* a text[] literal, or NULL: any (ListRecipients) */
  bool enabled_only; /* leave disabled users out */
} list_args;

static int list_fn(db_conn *c, void *ud) {
  list_args *a = ud;
  db_param p[] = {db_text(a->tenant), db_bool(a->customers),
                  db_text(a->after),  db_int64(a->limit + 1),
                  db_text(a->roles),  db_bool(a->enabled_only)};
  db_result *res = NULL;
  int rc = db_exec(c,
                   "SELECT " USER_COLS " FROM auth.users u "
                   "WHERE u.tenant_id = $1 AND ($2 OR u.role <> 'customer') "
                   "AND ($3::uuid IS NULL OR u.id > $3::uuid) "
                   "AND ($5::text[] IS NULL OR u.role = ANY($5::text[])) "
                   "AND NOT ($6 AND u.disabled) "
                   "ORDER BY u.id LIMIT $4",
                   p, DB_NPARAMS(p), &res);
  *a->n = 0;
  *a->more = false;
  if (rc == ERR_OK) {
    int rows = (int)db_page_rows(res, (size_t)a->limit, a->more);
    for (int i = 0; i < rows && rc == ERR_OK; i++)
      rc = user_from_row(res, i, &a->out[i], false);
    if (rc == ERR_OK) *a->n = rows;
  }
  db_result_free(res);
  return rc;
}

int store_users_list(store *s, const char *tenant, bool include_customers,
                     const char *after_id, int limit, auth_user *out, int *n,
                     bool *more) {
  if (limit < 1) return ERR_INVAL;
  list_args a = {tenant,
                 include_customers,
                 after_id != NULL && after_id[0] != '\0' ? after_id : NULL,
                 limit,
                 out,
                 n,
                 more,
                 NULL,
                 false};
  return store_tx(s, tenant, true, list_fn, &a);
}

int store_users_by_role(store *s, const char *tenant, const char *roles,
                        const char *after_id, int limit, auth_user *out, int *n,
                        bool *more) {
  if (limit < 1 || roles == NULL) return ERR_INVAL;
  list_args a = {.tenant = tenant,
                 .customers = true,
                 .after =
                     after_id != NULL && after_id[0] != '\0' ? after_id : NULL,
                 .limit = limit,
                 .out = out,
                 .n = n,
                 .more = more,
                 .roles = roles,
                 .enabled_only = true};
  return store_tx(s, tenant, true, list_fn, &a);
}

/* ------------------------------------------------------------ phone --- */

typedef struct phone_args {
  const char *tenant, *id, *phone;
  auth_user *out;
} phone_args;

static int phone_fn(db_conn *c, void *ud) {
  phone_args *a = ud;
  db_param p[] = {db_text(a->tenant), db_text(a->id),
                  db_text(a->phone[0] ? a->phone : NULL)};
  return one_user(c,
                  "UPDATE auth.users AS u SET phone = $3, updated_at = now() "
                  "WHERE u.tenant_id = $1 AND u.id = $2 RETURNING " USER_COLS,
                  p, DB_NPARAMS(p), a->out, false);
}

int store_user_set_phone(store *s, const char *tenant, const char *id,
                         const char *phone, auth_user *out) {
  phone_args a = {tenant, id, phone != NULL ? phone : "", out};
  return store_tx(s, tenant, false, phone_fn, &a);
}

/* ------------------------------------------------------ role changes --- */

typedef struct change_args {
  const char *tenant;
  const char *id;
  const char *role; /* NULL: delete */
  const char *actor;
  enum store_refusal *refusal;
  bool *changed;
  auth_user *out;
} change_args;

/* Locks every owner row of the tenant (always in id order, so concurrent
 * changes queue instead of deadlocking) and returns their number. Under
 * READ COMMITTED a transaction that waited re-reads the rows, so a
 * concurrent demotion that committed first is seen. */
static int lock_owners(db_conn *c, const char *tenant, int *owners) {
  db_param p[] = {db_text(tenant)};
  db_result *res = NULL;
  int rc = db_exec(c,
                   "SELECT id FROM auth.users WHERE tenant_id = $1 "
                   "AND role = 'owner' ORDER BY id FOR UPDATE",
                   p, 1, &res);
  if (rc == ERR_OK) *owners = db_nrows(res);
  db_result_free(res);
  return rc;
}

static int change_fn(db_conn *c, void *ud) {
  change_args *a = ud;
  *a->refusal = STORE_DONE;
  *a->changed = false;
  int owners = 0;
  int rc = lock_owners(c, a->tenant, &owners);
  if (rc != ERR_OK) return rc;
  /* The actor's role now, not the one in its token. */
  db_param pa[] = {db_text(a->tenant), db_text(a->actor)};
  db_result *ar = NULL;
  rc = db_exec(c,
               "SELECT role FROM auth.users WHERE tenant_id = $1 AND id = $2 "
               "FOR SHARE",
               pa, 2, &ar);
  if (rc != ERR_OK) {
    db_result_free(ar);
    return rc;
  }
  const char *arole = db_nrows(ar) == 1 ? db_get(ar, 0, 0) : NULL;
  bool actor_owner = arole != NULL && strcmp(arole, "owner") == 0;
  bool actor_admin = arole != NULL && strcmp(arole, "admin") == 0;
  db_result_free(ar);
  if (!actor_owner && !actor_admin) {
    *a->refusal = STORE_FORBIDDEN;
    return ERR_OK;
  }
  auth_user cur;
  db_param p[] = {db_text(a->tenant), db_text(a->id)};
  rc = one_user(c,
                "SELECT " USER_COLS " FROM auth.users u "
                "WHERE u.tenant_id = $1 AND u.id = $2 FOR UPDATE",
                p, 2, &cur, false);
  if (rc == ERR_NOTFOUND) {
    *a->refusal = STORE_NOT_FOUND;
    return ERR_OK;
  }
  if (rc != ERR_OK) return rc;
  bool target_owner = strcmp(cur.role, "owner") == 0;
  bool to_owner = a->role != NULL && strcmp(a->role, "owner") == 0;
  if ((target_owner || to_owner) && !actor_owner) {
    *a->refusal = STORE_FORBIDDEN;
    return ERR_OK;
  }
  if (target_owner && !to_owner && owners <= 1) {
    *a->refusal = STORE_LAST_OWNER;
    return ERR_OK;
  }
  if (a->role == NULL) {
    db_result *res = NULL;
    rc = db_exec(c, "DELETE FROM auth.users WHERE tenant_id = $1 AND id = $2",
                 p, 2, &res);
    db_result_free(res);
    if (rc == ERR_OK) *a->out = cur;
    return rc;
  }
  if (strcmp(cur.role, a->role) == 0) {
    *a->out = cur; /* nothing changes, no token is invalidated */
    return ERR_OK;
  }
  *a->changed = true;
  db_param pu[] = {db_text(a->tenant), db_text(a->id), db_text(a->role)};
  return one_user(
      c,
      "UPDATE auth.users AS u SET role = $3, updated_at = now(), "
      /* Past every iat issued so far: a token issued after an
       * earlier change in the same second has an iat up to a
       * second ahead (see handlers.c). */
      "tokens_valid_after = GREATEST(now(), "
      "COALESCE(u.tokens_valid_after + interval '1 second', now())) "
      "WHERE u.tenant_id = $1 AND u.id = $2 RETURNING " USER_COLS,
      pu, DB_NPARAMS(pu), a->out, false);
}

int store_user_set_role(store *s, const char *tenant, const char *id,
                        const char *role, const char *actor_id,
                        enum store_refusal *refusal, bool *changed,
                        auth_user *out) {
  if (role == NULL || changed == NULL || actor_id == NULL) return ERR_INVAL;
  change_args a = {tenant, id, role, actor_id, refusal, changed, out};
  return store_tx(s, tenant, false, change_fn, &a);
}

int store_user_delete(store *s, const char *tenant, const char *id,
                      const char *actor_id, enum store_refusal *refusal,
                      auth_user *out) {
  if (actor_id == NULL) return ERR_INVAL;
  bool changed = false;
  change_args a = {tenant, id, NULL, actor_id, refusal, &changed, out};
  return store_tx(s, tenant, false, change_fn, &a);
}

typedef struct tdel_args {
  const char *tenant;
  char (*ids)[UUID_STR_LEN + 1];
  size_t cap;
  size_t *n;
} tdel_args;

static int tdel_fn(db_conn *c, void *ud) {
  tdel_args *a = ud;
  db_param p[] = {db_text(a->tenant)};
  db_result *res = NULL;
  int rc = db_exec(
      c, "DELETE FROM auth.users WHERE tenant_id = $1 RETURNING id::text", p, 1,
      &res);
  if (rc == ERR_OK) {
    int rows = db_nrows(res);
    *a->n = (size_t)rows;
    for (int i = 0; i < rows && (size_t)i < a->cap; i++)
      str_copy(a->ids[i], db_get(res, i, 0), UUID_STR_LEN + 1);
  }
  db_result_free(res);
  return rc;
}

int store_tenant_delete_users(store *s, const char *tenant,
                              char (*ids)[UUID_STR_LEN + 1], size_t cap,
                              size_t *n) {
  *n = 0;
  tdel_args a = {tenant, ids, cap, n};
  return store_tx(s, tenant, false, tdel_fn, &a);
}

/* ---------------------------------------------------------- sessions --- */

/* Inserts one refresh token and its routing row. */
static int insert_token(db_conn *c, const char *tenant, const char *family,
                        const uint8_t *hash, const char *jti, int64_t exp_ms) {
  db_param p[] = {db_bytes(hash, STORE_HASHBYTES), db_text(tenant),
                  db_text(family), db_text(jti), db_int64(exp_ms)};
  int rc = db_exec(c,
                   "INSERT INTO auth.refresh_tokens (token_hash, tenant_id, "
                   "family_id, access_jti, expires_at) VALUES ($1, $2, $3, $4, "
                   "to_timestamp($5::bigint / 1000.0))",
                   p, DB_NPARAMS(p), NULL);
  if (rc != ERR_OK) return rc;
  db_param pr[] = {db_bytes(hash, STORE_HASHBYTES), db_text(tenant)};
  return db_exec(
      c,
      "INSERT INTO auth.refresh_token_tenants (token_hash, tenant_id) "
      "VALUES ($1, $2)",
      pr, 2, NULL);
}

typedef struct sess_args {
  const char *tenant;
  const char *user;
  const uint8_t *hash;
  const char *jti;
  int64_t exp_ms;
} sess_args;

static int sess_fn(db_conn *c, void *ud) {
  sess_args *a = ud;
  char family[UUID_STR_LEN + 1];
  uuid_v7_str(family);
  db_param p[] = {db_text(family), db_text(a->tenant), db_text(a->user)};
  int rc = db_exec(c,
                   "INSERT INTO auth.refresh_families (id, tenant_id, user_id) "
                   "VALUES ($1, $2, $3)",
                   p, DB_NPARAMS(p), NULL);
  if (rc == ERR_OK)
    rc = insert_token(c, a->tenant, family, a->hash, a->jti, a->exp_ms);
  return rc;
}

int store_session_create(store *s, const char *tenant, const char *user_id,
                         const uint8_t hash[STORE_HASHBYTES],
                         const char *access_jti, int64_t expires_ms) {
  sess_args a = {tenant, user_id, hash, access_jti, expires_ms};
  return store_tx(s, tenant, false, sess_fn, &a);
}

int store_refresh_tenant(store *s, const uint8_t hash[STORE_HASHBYTES],
                         char tenant[UUID_STR_LEN + 1]) {
  db_conn *c = NULL;
  int rc = db_acquire(db_store_pool(s), &c);
  if (rc != ERR_OK) return rc;
  db_param p[] = {db_bytes(hash, STORE_HASHBYTES)};
  db_result *res = NULL;
  rc = db_exec(c,
               "SELECT tenant_id::text FROM auth.refresh_token_tenants "
               "WHERE token_hash = $1",
               p, 1, &res);
  if (rc == ERR_OK) {
    if (db_nrows(res) == 0)
      rc = ERR_NOTFOUND;
    else
      str_copy(tenant, db_get(res, 0, 0), UUID_STR_LEN + 1);
  }
  db_result_free(res);
  db_release(c);
  return rc;
}

/* Access jtis of a family issued within the last access_ttl_ms: the
 * access tokens that may still be valid and must be revoked with it. */
static int family_jtis(db_conn *c, const char *tenant, const char *family,
                       int64_t access_ttl_ms, char (*jtis)[UUID_STR_LEN + 1],
                       size_t *n) {
  db_param p[] = {db_text(tenant), db_text(family), db_int64(access_ttl_ms),
                  db_int64(STORE_MAX_JTIS)};
  db_result *res = NULL;
  int rc = db_exec(c,
                   "SELECT access_jti::text FROM auth.refresh_tokens "
                   "WHERE tenant_id = $1 AND family_id = $2 AND created_at > "
                   "now() - make_interval(secs => $3::bigint / 1000.0) "
                   "ORDER BY created_at DESC LIMIT $4",
                   p, DB_NPARAMS(p), &res);
  *n = 0;
  if (rc == ERR_OK) {
    int rows = db_nrows(res);
    for (int i = 0; i < rows && i < STORE_MAX_JTIS; i++)
      str_copy(jtis[i], db_get(res, i, 0), UUID_STR_LEN + 1);
    *n = (size_t)(rows < STORE_MAX_JTIS ? rows : STORE_MAX_JTIS);
  }
  db_result_free(res);
  return rc;
}

/* Reuse: someone holds a token that was already rotated. Whoever it is,
 * the session is compromised: revoke the whole family, and return the
 * access jtis that may still be valid so the caller revokes them too. */
static int revoke_reused(db_conn *c, const char *tenant, const char *user_id,
                         store_rotate *r) {
  db_param pf[] = {db_text(tenant), db_text(r->family_id)};
  int rc = db_exec(c,
                   "UPDATE auth.refresh_families SET revoked_at = now(), "
                   "revoke_reason = 'reuse' WHERE tenant_id = $1 AND id = $2",
                   pf, 2, NULL);
  if (rc == ERR_OK)
    rc = family_jtis(c, tenant, r->family_id, r->access_ttl_ms, r->jtis,
                     &r->njtis);
  if (rc == ERR_OK) {
    r->result = STORE_REUSED;
    str_copy(r->user.id, user_id, sizeof r->user.id);
    str_copy(r->user.tenant_id, tenant, sizeof r->user.tenant_id);
  }
  return rc;
}

typedef struct rot_args {
  const char *tenant;
  store_rotate *r;
} rot_args;

static int rot_fn(db_conn *c, void *ud) {
  rot_args *a = ud;
  store_rotate *r = a->r;
  r->result = STORE_INVALID;
  r->njtis = 0;
  db_param p[] = {db_text(a->tenant), db_bytes(r->old_hash, STORE_HASHBYTES)};
  db_result *res = NULL;
  int rc = db_exec(
      c,
      /* Both rows locked: with the family row alone, a refresh that
       * waited for it re-read the family after the winner committed but
       * kept its old view of the token (READ COMMITTED re-checks only
       * the locked rows), saw it unspent and rotated it a second time. */
      "SELECT t.family_id::text, t.spent_at IS NOT NULL, "
      "GREATEST(0, COALESCE((extract(epoch FROM (clock_timestamp() - "
      "t.spent_at)) * 1000)::bigint, 0)), "
      "t.expires_at <= now(), f.revoked_at IS NOT NULL, f.user_id::text "
      "FROM auth.refresh_tokens t JOIN auth.refresh_families f "
      "ON f.tenant_id = t.tenant_id AND f.id = t.family_id "
      "WHERE t.tenant_id = $1 AND t.token_hash = $2 FOR UPDATE OF f, t",
      p, 2, &res);
  if (rc != ERR_OK || db_nrows(res) == 0) {
    db_result_free(res);
    return rc;
  }
  bool spent = false, expired = false, revoked = false;
  int64_t spent_ago = 0;
  char user_id[UUID_STR_LEN + 1];
  str_copy(r->family_id, db_get(res, 0, 0), sizeof r->family_id);
  str_copy(user_id, db_get(res, 0, 5), sizeof user_id);
  if (db_get_bool(res, 0, 1, &spent) != ERR_OK ||
      db_get_int64(res, 0, 2, &spent_ago) != ERR_OK ||
      db_get_bool(res, 0, 3, &expired) != ERR_OK ||
      db_get_bool(res, 0, 4, &revoked) != ERR_OK)
    rc = ERR_DB;
  db_result_free(res);
  if (rc != ERR_OK || revoked) return rc;
  if (spent && !(r->reuse_interval_ms > 0 && spent_ago <= r->reuse_interval_ms))
    return revoke_reused(c, a->tenant, user_id, r);
  if (expired) return ERR_OK;
  db_param pu[] = {db_text(a->tenant), db_text(user_id)};
  rc = one_user(c,
                "SELECT " USER_COLS " FROM auth.users u "
                "WHERE u.tenant_id = $1 AND u.id = $2",
                pu, 2, &r->user, false);
  if (rc == ERR_NOTFOUND || (rc == ERR_OK && r->user.disabled)) return ERR_OK;
  if (rc != ERR_OK) return rc;
  if (!spent) {
    /* Spent only if still unspent: the row lock above already makes a
     * concurrent spend impossible; this keeps it so if the lock ever
     * goes (0 rows: someone else spent it first - reuse). */
    db_result *ur = NULL;
    rc =
        db_exec(c,
                "UPDATE auth.refresh_tokens SET spent_at = clock_timestamp() "
                "WHERE tenant_id = $1 AND token_hash = $2 AND spent_at IS NULL",
                p, 2, &ur);
    int64_t n = rc == ERR_OK ? db_affected(ur) : 0;
    db_result_free(ur);
    if (rc != ERR_OK) return rc;
    if (n != 1) return revoke_reused(c, a->tenant, user_id, r);
  }
  rc = insert_token(c, a->tenant, r->family_id, r->new_hash, r->new_access_jti,
                    r->new_expires_ms);
  if (rc == ERR_OK) r->result = STORE_ROTATED;
  return rc;
}

int store_refresh_rotate(store *s, const char *tenant, store_rotate *r) {
  rot_args a = {tenant, r};
  return store_tx(s, tenant, false, rot_fn, &a);
}

typedef struct rev_args {
  const char *tenant;
  const char *user;
  const uint8_t *hash;
  const char *jti;
  int64_t ttl;
  bool *found;
  char (*jtis)[UUID_STR_LEN + 1];
  size_t *njtis;
} rev_args;

static int rev_fn(db_conn *c, void *ud) {
  rev_args *a = ud;
  *a->found = false;
  *a->njtis = 0;
  db_result *res = NULL;
  int rc;
  if (a->hash != NULL) {
    db_param p[] = {db_text(a->tenant), db_text(a->user),
                    db_bytes(a->hash, STORE_HASHBYTES)};
    rc = db_exec(c,
                 "SELECT f.id::text FROM auth.refresh_families f JOIN "
                 "auth.refresh_tokens t ON t.tenant_id = f.tenant_id AND "
                 "t.family_id = f.id WHERE f.tenant_id = $1 AND f.user_id = $2 "
                 "AND t.token_hash = $3 FOR UPDATE OF f",
                 p, DB_NPARAMS(p), &res);
  } else {
    db_param p[] = {db_text(a->tenant), db_text(a->user), db_text(a->jti)};
    rc = db_exec(c,
                 "SELECT f.id::text FROM auth.refresh_families f JOIN "
                 "auth.refresh_tokens t ON t.tenant_id = f.tenant_id AND "
                 "t.family_id = f.id WHERE f.tenant_id = $1 AND f.user_id = $2 "
                 "AND t.access_jti = $3 FOR UPDATE OF f",
                 p, DB_NPARAMS(p), &res);
  }
  if (rc != ERR_OK || db_nrows(res) == 0) {
    db_result_free(res);
    return rc;
  }
  char family[UUID_STR_LEN + 1];
  str_copy(family, db_get(res, 0, 0), sizeof family);
  db_result_free(res);
  *a->found = true;
  db_param pf[] = {db_text(a->tenant), db_text(family)};
  rc = db_exec(c,
               "UPDATE auth.refresh_families SET revoked_at = now(), "
               "revoke_reason = 'logout' WHERE tenant_id = $1 AND id = $2 "
               "AND revoked_at IS NULL",
               pf, 2, NULL);
  if (rc == ERR_OK)
    rc = family_jtis(c, a->tenant, family, a->ttl, a->jtis, a->njtis);
  return rc;
}

int store_session_revoke(store *s, const char *tenant, const char *user_id,
                         const uint8_t *hash, const char *access_jti,
                         int64_t access_ttl_ms, bool *found,
                         char (*jtis)[UUID_STR_LEN + 1], size_t *njtis) {
  if (hash == NULL && (access_jti == NULL || !uuid_is_valid(access_jti))) {
    *found = false;
    *njtis = 0;
    return ERR_OK;
  }
  rev_args a = {tenant,        user_id, hash, access_jti,
                access_ttl_ms, found,   jtis, njtis};
  return store_tx(s, tenant, false, rev_fn, &a);
}

/* --------------------------------------------------------------- keys --- */

typedef struct keys_args {
  const char *const *kids;
  const char *const *pubs;
  size_t n;
} keys_args;

static int keys_fn(db_conn *c, void *ud) {
  keys_args *a = ud;
  int rc = db_exec(c, "UPDATE auth.signing_keys SET status = 'verify-only'",
                   NULL, 0, NULL);
  for (size_t i = 0; i < a->n && rc == ERR_OK; i++) {
    db_param p[] = {db_text(a->kids[i]), db_text(a->pubs[i]),
                    db_text(i == 0 ? "active" : "verify-only")};
    rc = db_exec(c,
                 "INSERT INTO auth.signing_keys (kid, public_key, status) "
                 "VALUES ($1, $2, $3) ON CONFLICT (kid) DO UPDATE SET "
                 "status = EXCLUDED.status, last_seen = now()",
                 p, DB_NPARAMS(p), NULL);
  }
  return rc;
}

int store_keys_record(store *s, const char *const *kids,
                      const char *const *public_b64, size_t n) {
  keys_args a = {kids, public_b64, n};
  return store_tx(s, NULL, false, keys_fn, &a);
}
