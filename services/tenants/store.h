/*
 * store.h - the tenants service's SQL: tenants and custom domains, in
 * schema "tenants", and the tenants.changed events written with them.
 *
 * Every function runs its own transaction (db_with_tx, retried on
 * serialisation failures), as the store's role (store_new), in one of two
 * scopes, matching the row-level
 * security policies of migrations/0001_tenants.sql:
 *   - directory scope (app.directory = 'on'): lookups across tenants -
 *     Resolve, creation, Suspend/Resume, the reaper;
 *   - tenant scope (app.tenant_id = the caller's tenant): member calls;
 *     every query also filters on the tenant id explicitly.
 * Changes that others must hear about write their event into
 * tenants.outbox in the same transaction (libs/outbox's outbox_append;
 * the payload is the caller's serialised TenantChanged, events.h); the
 * relay of libs/outbox publishes it after the commit.
 *
 * Errors are libs/db's: ERR_EXISTS (unique violation: slug or host
 * taken), ERR_NOTFOUND, ERR_CONFLICT (after retries), ERR_TIMEOUT,
 * ERR_UNAVAILABLE, ERR_INVAL (malformed id), ERR_DB.
 */
#ifndef TENANTS_STORE_H
#define TENANTS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/idem/idem.h"
#include "libs/tenantdir/tenantname.h"

#define STORE_NAME_MAX 100    /* characters */
#define STORE_NAME_BYTES 400  /* UTF-8 bytes at most for 100 chars */
#define STORE_MAX_DOMAINS 100 /* custom domains per tenant */

typedef struct store_tenant {
  char id[UUID_STR_LEN + 1];
  char slug[TENANTNAME_SLUG_MAX + 1];
  char name[STORE_NAME_BYTES + 1];
  char currency[4];
  char status[16]; /* provisioning | active | suspended */
  char created_at[RFC3339_MS_LEN + 1];
  int64_t version;
} store_tenant;

#define STORE_TOKEN_LEN 43 /* base64url of 32 random bytes */

typedef struct store_domain {
  char host[TENANTNAME_HOST_MAX + 1];
  char tenant_id[UUID_STR_LEN + 1];
  char created_at[RFC3339_MS_LEN + 1];
  int64_t version;
  bool verified;
  char verified_at[RFC3339_MS_LEN + 1]; /* "" while unverified */
  char token[STORE_TOKEN_LEN + 1];      /* "" once verified */
} store_domain;

/* An event to write to the outbox with a change. payload is borrowed. */
typedef struct store_event {
  const char *type; /* "TenantChanged" */
  const uint8_t *payload;
  size_t len;
} store_event;

/* -------------------------------------------------------------- set-up --- */

/* The tenants service's store is libs/db's: its pool and its role. */
typedef db_store store;

/* A store over db (borrowed). role (copied; "" or NULL: none) is the
 * database role every transaction switches to (set_config('role', ..,
 * true), the parameterised SET LOCAL ROLE) so that row-level security
 * binds even when DATABASE_URL names a superuser, as in dev and tests; the
 * migration creates "tenants_app" for this. Errors: ERR_INVAL (role not
 * [a-z_][a-z0-9_]*, at most 63), ERR_NOMEM. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *st); /* NULL-safe */

/* ------------------------------------------------------------ tenants --- */

/* Inserts a tenant in status 'provisioning' (invisible to lookups, but
 * holding its slug). ERR_EXISTS when the slug is taken. */
int store_insert_provisioning(store *st, const char *id, const char *slug,
                              const char *name, const char *currency,
                              store_tenant *out) WARN_UNUSED;

/* 'provisioning' -> 'active' with a new version, plus ev in the outbox.
 * ERR_NOTFOUND when the row is gone or no longer provisioning (reaped). */
int store_activate(store *st, const char *id, const store_event *ev,
                   store_tenant *out) WARN_UNUSED;

/* Deletes the tenant if it is still 'provisioning'. ERR_NOTFOUND when
 * there is no such provisioning row. */
int store_delete_provisioning(store *st, const char *id) WARN_UNUSED;

/* Ids of 'provisioning' tenants created more than older_than_ms ago,
 * oldest first, at most cap (ids[i] has UUID_STR_LEN + 1 bytes). */
int store_stale_provisioning(store *st, int64_t older_than_ms,
                             char (*ids)[UUID_STR_LEN + 1], size_t cap,
                             size_t *n) WARN_UNUSED;

/* The tenant (tenant scope), unless provisioning: ERR_NOTFOUND. */
int store_get(store *st, const char *tenant_id, store_tenant *out) WARN_UNUSED;

/* The tenant by id across tenants (directory scope), provisioning
 * included. */
int store_get_any(store *st, const char *tenant_id,
                  store_tenant *out) WARN_UNUSED;

/* Sets name and/or currency (NULL: unchanged) of an active or suspended
 * tenant (tenant scope), bumps its version, writes ev (whose payload the
 * caller builds; the event is written only when ev is not NULL).
 * ERR_NOTFOUND. */
int store_update(store *st, const char *tenant_id, const char *name,
                 const char *currency, const store_event *ev,
                 store_tenant *out) WARN_UNUSED;

/* Sets the status ("active" or "suspended") of a non-provisioning tenant
 * (directory scope). *changed says whether it differed; only then are the
 * version bumped and ev written. ERR_NOTFOUND. */
int store_set_status(store *st, const char *tenant_id, const char *status,
                     const store_event *ev, store_tenant *out,
                     bool *changed) WARN_UNUSED;

/* ------------------------------------------------------------ resolve --- */

/* What Resolve answers. version orders cache writes. */
typedef struct store_resolved {
  char tenant_id[UUID_STR_LEN + 1];
  char slug[TENANTNAME_SLUG_MAX + 1];
  char status[16];
  int64_t version;
} store_resolved;

/* By slug / by custom host (directory scope); provisioning tenants and
 * unverified domains are not found (ERR_NOTFOUND). */
int store_resolve_slug(store *st, const char *slug,
                       store_resolved *out) WARN_UNUSED;
int store_resolve_host(store *st, const char *host,
                       store_resolved *out) WARN_UNUSED;

/* ------------------------------------------------------------ domains --- */

/* True when host is verified by some tenant other than tenant_id
 * (directory scope: the tenant scope cannot see other tenants' rows). */
int store_host_taken(store *st, const char *tenant_id, const char *host,
                     bool *taken) WARN_UNUSED;

/* Claims host for the tenant (tenant scope), unverified with token
 * (STORE_TOKEN_LEN chars), with a new version, plus ev. ERR_EXISTS when
 * the tenant has the host already; ERR_TOOBIG when it has
 * STORE_MAX_DOMAINS already. Another tenant's claim does not conflict
 * (store_host_taken is the caller's check against verified ones). */
int store_add_domain(store *st, const char *tenant_id, const char *host,
                     const char *token, const store_event *ev,
                     store_domain *out) WARN_UNUSED;

/* The tenant's domain (tenant scope). ERR_NOTFOUND. */
int store_get_domain(store *st, const char *tenant_id, const char *host,
                     store_domain *out) WARN_UNUSED;

/* Marks the tenant's host verified if it is still unverified with this
 * token (tenant scope), with a new version, plus ev. ERR_NOTFOUND when
 * there is no such unverified claim; ERR_EXISTS when another tenant holds
 * the host verified. */
int store_verify_domain(store *st, const char *tenant_id, const char *host,
                        const char *token, const store_event *ev,
                        store_domain *out) WARN_UNUSED;

/* Removes the tenant's host (tenant scope), plus ev. *version gets a new
 * version for the removal (cache tombstone); *was_verified says whether
 * the host routed to this tenant (only then may the cache be touched:
 * another tenant may hold it verified). ERR_NOTFOUND. */
int store_remove_domain(store *st, const char *tenant_id, const char *host,
                        const store_event *ev, int64_t *version,
                        bool *was_verified) WARN_UNUSED;

/* The tenant's hosts by name (at most cap, STORE_MAX_DOMAINS suffices).
 * Tenant scope when tenant_scope, else directory scope. */
int store_list_domains(store *st, const char *tenant_id, bool tenant_scope,
                       store_domain *out, size_t cap, size_t *n) WARN_UNUSED;

/* ------------------------------------------------------ idempotency --- */

#define STORE_IDEM_TABLE "tenants.idempotency"

/* libs/idem over tenants.idempotency, each its own transaction, in the
 * tenant scope of r->tenant_id when tenant_scope, else the directory
 * scope (anonymous CreateTenant). start: idem_begin, and on IDEM_NEW a
 * claim living lease_ms (the caller's saga runs outside the transaction);
 * save: the answer replaces the claim; release: the claim goes (the call
 * failed, the key is free again).
 *
 * start claims with note (the work's own id, idem_claim_note; may be
 * NULL). With takeover (a retry of the same call) a live claim of the
 * same request is taken over instead of answered IDEM_BUSY: it is
 * claimed again for lease_ms with its own note, and start answers
 * IDEM_NEW with out->pending set and out->answer/len the claim's note -
 * the work to carry on. */
int store_idem_start(store *st, const idem_ref *r, bool tenant_scope,
                     int64_t lease_ms, bool takeover, const char *note,
                     idem_found *out) WARN_UNUSED;
int store_idem_save(store *st, const idem_ref *r, bool tenant_scope,
                    const uint8_t *answer, size_t len) WARN_UNUSED;
int store_idem_release(store *st, const idem_ref *r,
                       bool tenant_scope) WARN_UNUSED;

/* Deletes up to batch expired keys of every scope (directory scope);
 * *deleted (optional) gets the count. */
int store_expire_idempotency(store *st, size_t batch,
                             int64_t *deleted) WARN_UNUSED;

/* Tenants whose status should be in Redis: every suspended tenant and
 * every tenant changed within the last recent_ms, at most cap, as
 * (id, status) pairs. */
typedef struct store_status {
  char id[UUID_STR_LEN + 1];
  char status[16];
} store_status;
int store_statuses_to_sync(store *st, int64_t recent_ms, store_status *out,
                           size_t cap, size_t *n) WARN_UNUSED;

#endif
