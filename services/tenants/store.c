/*
 * store.c - the tenants service's SQL (see store.h).
 *
 * Each public function is a small struct of arguments plus a static
 * function run inside db_with_tx, so every statement is parameterised,
 * every change and its outbox event commit together, and a serialisation
 * failure retries the whole unit. Times leave the database as Unix
 * milliseconds and are formatted here (time_format_rfc3339), so the wire
 * format never depends on the server's DateStyle or time zone.
 */
#include "services/tenants/store.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/outbox/outbox.h"
#include "services/tenants/events.h"

/* Columns of a tenant row, in the order row_tenant reads them. */
#define TENANT_COLS                                                            \
  "id::text, slug, name, currency, status, "                                   \
  "floor(extract(epoch FROM created_at) * 1000)::bigint, version"

/* ------------------------------------------------------------ set-up --- */

int store_new(db_pool *db, const char *role, store **out) {
  return db_store_new(db, role, out);
}

void store_free(store *st) { db_store_free(st); }

/* ------------------------------------------------------------ helpers --- */

/* The directory's policy switch: the scope of work across tenants. */
#define DIRECTORY "app.directory"

/* Runs fn in a transaction as the store's role: tenant scope when
 * tenant_id is set, directory scope (app.directory = 'on') when it is
 * NULL. */
static int run(store *st, const char *tenant_id,
               int (*fn)(db_conn *c, void *ud), void *ud) {
  return db_store_run(st, tenant_id, DIRECTORY, false, fn, ud);
}

static int format_ms(const db_result *r, int row, int col, char *out) {
  int64_t ms = 0;
  int rc = db_get_int64(r, row, col, &ms);
  if (rc != ERR_OK) return rc;
  return time_format_rfc3339(ms, out);
}

static int row_tenant(const db_result *r, int row, store_tenant *t) {
  memset(t, 0, sizeof *t);
  db_copy_cell(r, row, 0, t->id, sizeof t->id);
  db_copy_cell(r, row, 1, t->slug, sizeof t->slug);
  db_copy_cell(r, row, 2, t->name, sizeof t->name);
  db_copy_cell(r, row, 3, t->currency, sizeof t->currency);
  db_copy_cell(r, row, 4, t->status, sizeof t->status);
  int rc = format_ms(r, row, 5, t->created_at);
  if (rc != ERR_OK) return rc;
  return db_get_int64(r, row, 6, &t->version);
}

/* Runs a statement that returns one tenant row (or none: ERR_NOTFOUND). */
static int one_tenant(db_conn *c, const char *sql, const db_param *ps, int n,
                      store_tenant *out) {
  db_result *r = NULL;
  int rc = db_exec(c, sql, ps, n, &r);
  if (rc != ERR_OK) return rc;
  if (db_nrows(r) != 1)
    rc = ERR_NOTFOUND;
  else if (out != NULL)
    rc = row_tenant(r, 0, out);
  db_result_free(r);
  return rc;
}

/* Writes the change's event for tenant_id into the outbox, in the
 * change's transaction (NULL ev: nothing). */
static int event_insert(db_conn *c, const char *tenant_id,
                        const store_event *ev) {
  if (ev == NULL) return ERR_OK;
  outbox_event oe = {.topic = EVENTS_TOPIC,
                     .type = ev->type,
                     .tenant_id = tenant_id,
                     .payload = ev->payload,
                     .len = ev->len};
  return outbox_append(c, EVENTS_SCHEMA, &oe);
}

/* ------------------------------------------------------------ tenants --- */

typedef struct insert_args {
  const char *id, *slug, *name, *currency;
  store_tenant *out;
} insert_args;

static int insert_fn(db_conn *c, void *ud) {
  insert_args *a = ud;
  db_param ps[] = {db_text(a->id), db_text(a->slug), db_text(a->name),
                   db_text(a->currency)};
  return one_tenant(c,
                    "INSERT INTO tenants.tenants (id, slug, name, currency, "
                    "status, version) VALUES ($1::uuid, $2, $3, $4, "
                    "'provisioning', nextval('tenants.change_seq')) "
                    "RETURNING " TENANT_COLS,
                    ps, DB_NPARAMS(ps), a->out);
}

int store_insert_provisioning(store *st, const char *id, const char *slug,
                              const char *name, const char *currency,
                              store_tenant *out) {
  insert_args a = {id, slug, name, currency, out};
  return run(st, NULL, insert_fn, &a);
}

typedef struct activate_args {
  const char *id;
  const store_event *ev;
  store_tenant *out;
} activate_args;

static int activate_fn(db_conn *c, void *ud) {
  activate_args *a = ud;
  db_param ps[] = {db_text(a->id)};
  int rc = one_tenant(c,
                      "UPDATE tenants.tenants SET status = 'active', "
                      "version = nextval('tenants.change_seq'), "
                      "updated_at = now() WHERE id = $1::uuid AND "
                      "status = 'provisioning' RETURNING " TENANT_COLS,
                      ps, 1, a->out);
  if (rc != ERR_OK) return rc;
  return event_insert(c, a->id, a->ev);
}

int store_activate(store *st, const char *id, const store_event *ev,
                   store_tenant *out) {
  activate_args a = {id, ev, out};
  return run(st, NULL, activate_fn, &a);
}

static int delete_prov_fn(db_conn *c, void *ud) {
  db_param ps[] = {db_text(ud)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "DELETE FROM tenants.tenants WHERE id = $1::uuid AND "
                   "status = 'provisioning'",
                   ps, 1, &r);
  if (rc == ERR_OK && db_affected(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_delete_provisioning(store *st, const char *id) {
  return run(st, NULL, delete_prov_fn, (void *)id);
}

typedef struct stale_args {
  int64_t older_than_ms;
  char (*ids)[UUID_STR_LEN + 1];
  size_t cap;
  size_t *n;
} stale_args;

static int stale_fn(db_conn *c, void *ud) {
  stale_args *a = ud;
  db_param ps[] = {db_int64(a->older_than_ms), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT id::text FROM tenants.tenants WHERE status = "
                   "'provisioning' AND created_at < now() - "
                   "make_interval(secs => $1::bigint / 1000.0) "
                   "ORDER BY created_at LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  *a->n = 0;
  for (int i = 0; i < db_nrows(r) && (size_t)i < a->cap; i++) {
    db_copy_cell(r, i, 0, a->ids[i], UUID_STR_LEN + 1);
    (*a->n)++;
  }
  db_result_free(r);
  return ERR_OK;
}

int store_stale_provisioning(store *st, int64_t older_than_ms,
                             char (*ids)[UUID_STR_LEN + 1], size_t cap,
                             size_t *n) {
  *n = 0;
  stale_args a = {older_than_ms, ids, cap, n};
  return run(st, NULL, stale_fn, &a);
}

typedef struct get_args {
  const char *id;
  bool visible_only;
  store_tenant *out;
} get_args;

static int get_fn(db_conn *c, void *ud) {
  get_args *a = ud;
  db_param ps[] = {db_text(a->id)};
  return one_tenant(c,
                    a->visible_only
                        ? "SELECT " TENANT_COLS " FROM tenants.tenants WHERE "
                          "id = $1::uuid AND status <> 'provisioning'"
                        : "SELECT " TENANT_COLS " FROM tenants.tenants WHERE "
                          "id = $1::uuid",
                    ps, 1, a->out);
}

int store_get(store *st, const char *tenant_id, store_tenant *out) {
  get_args a = {tenant_id, true, out};
  return run(st, tenant_id, get_fn, &a);
}

int store_get_any(store *st, const char *tenant_id, store_tenant *out) {
  get_args a = {tenant_id, false, out};
  return run(st, NULL, get_fn, &a);
}

typedef struct update_args {
  const char *id, *name, *currency;
  const store_event *ev;
  store_tenant *out;
} update_args;

static int update_fn(db_conn *c, void *ud) {
  update_args *a = ud;
  db_param ps[] = {db_text(a->id), db_text(a->name), db_text(a->currency)};
  int rc = one_tenant(c,
                      "UPDATE tenants.tenants SET name = coalesce($2, name), "
                      "currency = coalesce($3, currency), "
                      "version = nextval('tenants.change_seq'), "
                      "updated_at = now() WHERE id = $1::uuid AND "
                      "status <> 'provisioning' RETURNING " TENANT_COLS,
                      ps, DB_NPARAMS(ps), a->out);
  if (rc != ERR_OK) return rc;
  return event_insert(c, a->id, a->ev);
}

int store_update(store *st, const char *tenant_id, const char *name,
                 const char *currency, const store_event *ev,
                 store_tenant *out) {
  update_args a = {tenant_id, name, currency, ev, out};
  return run(st, tenant_id, update_fn, &a);
}

typedef struct status_args {
  const char *id, *status;
  const store_event *ev;
  store_tenant *out;
  bool *changed;
} status_args;

static int status_fn(db_conn *c, void *ud) {
  status_args *a = ud;
  db_param ps[] = {db_text(a->id)};
  /* The row lock orders concurrent Suspend/Resume of one tenant. */
  int rc = one_tenant(c,
                      "SELECT " TENANT_COLS " FROM tenants.tenants WHERE "
                      "id = $1::uuid AND status <> 'provisioning' FOR UPDATE",
                      ps, 1, a->out);
  if (rc != ERR_OK) return rc;
  *a->changed = strcmp(a->out->status, a->status) != 0;
  if (!*a->changed) return ERR_OK;
  db_param us[] = {db_text(a->id), db_text(a->status)};
  rc = one_tenant(c,
                  "UPDATE tenants.tenants SET status = $2, "
                  "version = nextval('tenants.change_seq'), "
                  "updated_at = now() WHERE id = $1::uuid "
                  "RETURNING " TENANT_COLS,
                  us, DB_NPARAMS(us), a->out);
  if (rc != ERR_OK) return rc;
  return event_insert(c, a->id, a->ev);
}

int store_set_status(store *st, const char *tenant_id, const char *status,
                     const store_event *ev, store_tenant *out, bool *changed) {
  *changed = false;
  status_args a = {tenant_id, status, ev, out, changed};
  return run(st, NULL, status_fn, &a);
}

/* ------------------------------------------------------------ resolve --- */

typedef struct resolve_args {
  const char *key;
  bool by_host;
  store_resolved *out;
} resolve_args;

static int resolve_fn(db_conn *c, void *ud) {
  resolve_args *a = ud;
  db_param ps[] = {db_text(a->key)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      a->by_host
          ? "SELECT t.id::text, t.slug, t.status, "
            "greatest(t.version, d.version) FROM tenants.domains d "
            "JOIN tenants.tenants t ON t.id = d.tenant_id "
            "WHERE d.host = $1 AND d.verified_at IS NOT NULL AND "
            "t.status <> 'provisioning'"
          : "SELECT id::text, slug, status, version FROM tenants.tenants "
            "WHERE slug = $1 AND status <> 'provisioning'",
      ps, 1, &r);
  if (rc != ERR_OK) return rc;
  if (db_nrows(r) != 1) {
    rc = ERR_NOTFOUND;
  } else {
    db_copy_cell(r, 0, 0, a->out->tenant_id, sizeof a->out->tenant_id);
    db_copy_cell(r, 0, 1, a->out->slug, sizeof a->out->slug);
    db_copy_cell(r, 0, 2, a->out->status, sizeof a->out->status);
    rc = db_get_int64(r, 0, 3, &a->out->version);
  }
  db_result_free(r);
  return rc;
}

int store_resolve_slug(store *st, const char *slug, store_resolved *out) {
  resolve_args a = {slug, false, out};
  return run(st, NULL, resolve_fn, &a);
}

int store_resolve_host(store *st, const char *host, store_resolved *out) {
  resolve_args a = {host, true, out};
  return run(st, NULL, resolve_fn, &a);
}

/* ------------------------------------------------------------ domains --- */

static int row_domain(const db_result *r, int row, store_domain *d) {
  memset(d, 0, sizeof *d);
  db_copy_cell(r, row, 0, d->host, sizeof d->host);
  db_copy_cell(r, row, 1, d->tenant_id, sizeof d->tenant_id);
  int rc = format_ms(r, row, 2, d->created_at);
  if (rc == ERR_OK) rc = db_get_int64(r, row, 3, &d->version);
  if (rc != ERR_OK) return rc;
  d->verified = !db_is_null(r, row, 4);
  if (d->verified)
    rc = format_ms(r, row, 4, d->verified_at);
  else
    db_copy_cell(r, row, 5, d->token, sizeof d->token);
  return rc;
}

#define DOMAIN_COLS                                                            \
  "host, tenant_id::text, "                                                    \
  "floor(extract(epoch FROM created_at) * 1000)::bigint, version, "            \
  "floor(extract(epoch FROM verified_at) * 1000)::bigint, "                    \
  "verification_token"

typedef struct domain_args {
  const char *tenant_id, *host, *token;
  const store_event *ev;
  store_domain *out;
  int64_t *version;
  bool *flag;
} domain_args;

/* Runs a statement returning one domain row (none: ERR_NOTFOUND). */
static int one_domain(db_conn *c, const char *sql, const db_param *ps, int n,
                      store_domain *out) {
  db_result *r = NULL;
  int rc = db_exec(c, sql, ps, n, &r);
  if (rc != ERR_OK) return rc;
  rc = db_nrows(r) == 1 ? row_domain(r, 0, out) : ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

static int taken_fn(db_conn *c, void *ud) {
  domain_args *a = ud;
  db_param ps[] = {db_text(a->host), db_text(a->tenant_id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT 1 FROM tenants.domains WHERE host = $1 AND "
                   "tenant_id <> $2::uuid AND verified_at IS NOT NULL",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK) *a->flag = db_nrows(r) > 0;
  db_result_free(r);
  return rc;
}

int store_host_taken(store *st, const char *tenant_id, const char *host,
                     bool *taken) {
  *taken = false;
  domain_args a = {.tenant_id = tenant_id, .host = host, .flag = taken};
  return run(st, NULL, taken_fn, &a);
}

static int get_domain_fn(db_conn *c, void *ud) {
  domain_args *a = ud;
  db_param ps[] = {db_text(a->tenant_id), db_text(a->host)};
  return one_domain(c,
                    "SELECT " DOMAIN_COLS " FROM tenants.domains WHERE "
                    "tenant_id = $1::uuid AND host = $2",
                    ps, DB_NPARAMS(ps), a->out);
}

int store_get_domain(store *st, const char *tenant_id, const char *host,
                     store_domain *out) {
  domain_args a = {.tenant_id = tenant_id, .host = host, .out = out};
  return run(st, tenant_id, get_domain_fn, &a);
}

static int verify_fn(db_conn *c, void *ud) {
  domain_args *a = ud;
  db_param ps[] = {db_text(a->tenant_id), db_text(a->host), db_text(a->token)};
  int rc = one_domain(c,
                      "UPDATE tenants.domains SET verified_at = now(), "
                      "verification_token = NULL, "
                      "version = nextval('tenants.change_seq') WHERE "
                      "tenant_id = $1::uuid AND host = $2 AND "
                      "verified_at IS NULL AND verification_token = $3 "
                      "RETURNING " DOMAIN_COLS,
                      ps, DB_NPARAMS(ps), a->out);
  if (rc != ERR_OK) return rc;
  return event_insert(c, a->tenant_id, a->ev);
}

int store_verify_domain(store *st, const char *tenant_id, const char *host,
                        const char *token, const store_event *ev,
                        store_domain *out) {
  domain_args a = {.tenant_id = tenant_id,
                   .host = host,
                   .token = token,
                   .ev = ev,
                   .out = out};
  return run(st, tenant_id, verify_fn, &a);
}

static int add_domain_fn(db_conn *c, void *ud) {
  domain_args *a = ud;
  db_param ps[] = {db_text(a->tenant_id)};
  db_result *r = NULL;
  /* Lock the tenant row: the count below stays true until commit, and a
   * suspended/provisioning check is on the same row. */
  int rc = db_exec(c,
                   "SELECT (SELECT count(*) FROM tenants.domains WHERE "
                   "tenant_id = $1::uuid) FROM tenants.tenants WHERE "
                   "id = $1::uuid AND status <> 'provisioning' FOR UPDATE",
                   ps, 1, &r);
  if (rc != ERR_OK) return rc;
  int64_t count = 0;
  if (db_nrows(r) != 1)
    rc = ERR_NOTFOUND;
  else
    rc = db_get_int64(r, 0, 0, &count);
  db_result_free(r);
  if (rc != ERR_OK) return rc;
  if (count >= STORE_MAX_DOMAINS) return ERR_TOOBIG;
  db_param is[] = {db_text(a->host), db_text(a->tenant_id), db_text(a->token)};
  rc = one_domain(c,
                  "INSERT INTO tenants.domains (host, tenant_id, version, "
                  "verification_token) VALUES ($1, $2::uuid, "
                  "nextval('tenants.change_seq'), $3) RETURNING " DOMAIN_COLS,
                  is, DB_NPARAMS(is), a->out);
  if (rc == ERR_NOTFOUND) rc = ERR_INTERNAL;
  if (rc != ERR_OK) return rc;
  return event_insert(c, a->tenant_id, a->ev);
}

int store_add_domain(store *st, const char *tenant_id, const char *host,
                     const char *token, const store_event *ev,
                     store_domain *out) {
  domain_args a = {.tenant_id = tenant_id,
                   .host = host,
                   .token = token,
                   .ev = ev,
                   .out = out};
  return run(st, tenant_id, add_domain_fn, &a);
}

static int remove_domain_fn(db_conn *c, void *ud) {
  domain_args *a = ud;
  db_param ps[] = {db_text(a->tenant_id), db_text(a->host)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "DELETE FROM tenants.domains WHERE tenant_id = $1::uuid "
                   "AND host = $2 RETURNING nextval('tenants.change_seq'), "
                   "verified_at IS NOT NULL",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  if (db_nrows(r) != 1)
    rc = ERR_NOTFOUND;
  else
    rc = db_get_int64(r, 0, 0, a->version);
  if (rc == ERR_OK) rc = db_get_bool(r, 0, 1, a->flag);
  db_result_free(r);
  if (rc != ERR_OK) return rc;
  return event_insert(c, a->tenant_id, a->ev);
}

int store_remove_domain(store *st, const char *tenant_id, const char *host,
                        const store_event *ev, int64_t *version,
                        bool *was_verified) {
  *was_verified = false;
  domain_args a = {.tenant_id = tenant_id,
                   .host = host,
                   .ev = ev,
                   .version = version,
                   .flag = was_verified};
  return run(st, tenant_id, remove_domain_fn, &a);
}

typedef struct list_args {
  const char *tenant_id;
  store_domain *out;
  size_t cap;
  size_t *n;
} list_args;

static int list_domains_fn(db_conn *c, void *ud) {
  list_args *a = ud;
  db_param ps[] = {db_text(a->tenant_id), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " DOMAIN_COLS " FROM tenants.domains WHERE "
                   "tenant_id = $1::uuid ORDER BY host LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  *a->n = 0;
  for (int i = 0; i < db_nrows(r) && (size_t)i < a->cap && rc == ERR_OK; i++) {
    rc = row_domain(r, i, &a->out[i]);
    if (rc == ERR_OK) (*a->n)++;
  }
  db_result_free(r);
  return rc;
}

int store_list_domains(store *st, const char *tenant_id, bool tenant_scope,
                       store_domain *out, size_t cap, size_t *n) {
  *n = 0;
  list_args a = {tenant_id, out, cap, n};
  return run(st, tenant_scope ? tenant_id : NULL, list_domains_fn, &a);
}

typedef struct sync_args {
  int64_t recent_ms;
  store_status *out;
  size_t cap;
  size_t *n;
} sync_args;

static int statuses_fn(db_conn *c, void *ud) {
  sync_args *a = ud;
  db_param ps[] = {db_int64(a->recent_ms), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT id::text, status FROM tenants.tenants WHERE "
                   "status = 'suspended' OR (status = 'active' AND "
                   "updated_at > now() - make_interval(secs => "
                   "$1::bigint / 1000.0)) ORDER BY updated_at DESC LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  *a->n = 0;
  for (int i = 0; i < db_nrows(r) && (size_t)i < a->cap; i++) {
    db_copy_cell(r, i, 0, a->out[i].id, sizeof a->out[i].id);
    db_copy_cell(r, i, 1, a->out[i].status, sizeof a->out[i].status);
    (*a->n)++;
  }
  db_result_free(r);
  return ERR_OK;
}

int store_statuses_to_sync(store *st, int64_t recent_ms, store_status *out,
                           size_t cap, size_t *n) {
  *n = 0;
  sync_args a = {recent_ms, out, cap, n};
  return run(st, NULL, statuses_fn, &a);
}

/* -------------------------------------------------------- idempotency --- */

typedef struct idem_args {
  const idem_ref *r;
  int64_t lease_ms;
  bool takeover;
  const char *note;
  idem_found *found;
  const uint8_t *answer;
  size_t len;
} idem_args;

static int idem_start_fn(db_conn *c, void *ud) {
  idem_args *a = ud;
  idem_found_clear(a->found); /* a retried attempt starts afresh */
  int rc = idem_begin(c, a->r, a->found);
  if (rc != ERR_OK) return rc;
  idem_found *f = a->found;
  if (f->outcome == IDEM_NEW) {
    size_t n = a->note ? strlen(a->note) : 0;
    return idem_claim_note(c, a->r, a->lease_ms, (const uint8_t *)a->note, n);
  }
  if (f->outcome != IDEM_BUSY || !f->pending || !a->takeover) return ERR_OK;
  /* Our own earlier attempt's claim: renew it, note kept, and go on. */
  rc = idem_claim_note(c, a->r, a->lease_ms, f->answer, f->len);
  if (rc == ERR_OK) f->outcome = IDEM_NEW;
  return rc;
}

int store_idem_start(store *st, const idem_ref *r, bool tenant_scope,
                     int64_t lease_ms, bool takeover, const char *note,
                     idem_found *out) {
  memset(out, 0, sizeof *out);
  idem_args a = {.r = r,
                 .lease_ms = lease_ms,
                 .takeover = takeover,
                 .note = note,
                 .found = out};
  int rc = run(st, tenant_scope ? r->tenant_id : NULL, idem_start_fn, &a);
  if (rc == ERR_EXISTS) { /* a twin claimed first (lock hash collision) */
    idem_found_clear(out);
    out->outcome = IDEM_BUSY;
    rc = ERR_OK;
  }
  if (rc != ERR_OK) idem_found_clear(out);
  return rc;
}

static int idem_save_fn(db_conn *c, void *ud) {
  idem_args *a = ud;
  return idem_save(c, a->r, 0, a->answer, a->len);
}

int store_idem_save(store *st, const idem_ref *r, bool tenant_scope,
                    const uint8_t *answer, size_t len) {
  idem_args a = {.r = r, .answer = answer, .len = len};
  return run(st, tenant_scope ? r->tenant_id : NULL, idem_save_fn, &a);
}

static int idem_release_fn(db_conn *c, void *ud) {
  idem_args *a = ud;
  return idem_release(c, a->r);
}

int store_idem_release(store *st, const idem_ref *r, bool tenant_scope) {
  idem_args a = {.r = r};
  return run(st, tenant_scope ? r->tenant_id : NULL, idem_release_fn, &a);
}

int store_expire_idempotency(store *st, size_t batch, int64_t *deleted) {
  return idem_expire_all(st, DIRECTORY, STORE_IDEM_TABLE, batch, deleted);
}
