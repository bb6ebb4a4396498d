/*
 * rescache.h - the tenants service's Redis: the Resolve cache shared by
 * all replicas, and the tenant:status:<id> keys other services read.
 *
 * Resolve cache. Keys "tenants:resolve:slug:<slug>" and
 * "tenants:resolve:host:<host>" hold "<version> <tenant_id> <slug>
 * <status>", or a tombstone "<version> -" for a host just removed, with a
 * TTL (TENANTS_RESOLVE_CACHE_TTL). Every change to a tenant or its
 * domains takes a new version from the database's change_seq, and every
 * write goes through one Lua script that refuses to replace a value of a
 * higher version. So a Resolve that read the database before a Suspend
 * and writes its answer after the Suspend's own write cannot put the old
 * status back: the cache only ever moves forward. "Not found" is not
 * cached here (a tenant being created would be hidden by it); the
 * clients' tenantdir caches it briefly in-process instead.
 *
 * Tenant records (GetTenant, GET /v1/tenant). "tenants:tenant:<id>" holds
 * "<version> <status> <currency> <created_at> <slug> <name>" (the name
 * last: it may hold spaces) with the same TTL, written through the same
 * version-guarded script: by a GetTenant that read the database, and by
 * every change of the tenant (UpdateTenant, Suspend, Resume) before it
 * answers, so the next read sees the change and a slower reader's older
 * copy can never replace it. Tenants still provisioning are not cached
 * (nobody holds a token for them yet, and activation is not a write
 * this module hears of). A write-through that fails may leave an older
 * record in Redis: this replica then reads that tenant from the database
 * until a write of it succeeds (at most 256 such tenants remembered; past
 * that, no record is trusted for a TTL), other replicas for at most the
 * TTL. Reads with Redis down go to the database.
 *
 * tenant:status:<id> = "active" | "suspended", no TTL (IDENTITY.md):
 * written after every status change and by the periodic resync, read by
 * libs/authn and auth's Login/Refresh.
 *
 * Redis is optional at every step: with no cache or a failing one, gets
 * miss and writes are skipped (counted and logged once per streak); the
 * database stays the source of truth.
 */
#ifndef TENANTS_RESCACHE_H
#define TENANTS_RESCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"
#include "services/tenants/store.h"

typedef struct rescache rescache;

enum rescache_hit {
  RESCACHE_MISS = 0, /* ask the database */
  RESCACHE_FOUND,    /* *out filled */
  RESCACHE_GONE,     /* a tombstone: known not to exist */
};

/* redis is borrowed and may be NULL (everything misses). ttl_ms > 0.
 * Errors: ERR_INVAL, ERR_NOMEM. */
int rescache_new(cache *redis, int64_t ttl_ms, rescache **out) WARN_UNUSED;
void rescache_free(rescache *rc); /* NULL-safe */

/* Looks key up (a slug, or a normalised host when by_host). A value that
 * does not parse counts as a miss. */
enum rescache_hit rescache_get(rescache *rc, bool by_host, const char *key,
                               store_resolved *out);

/* Caches r under key unless a newer version is there. Best effort. */
void rescache_put(rescache *rc, bool by_host, const char *key,
                  const store_resolved *r);

/* Caches a tombstone for key at version, unless newer. Best effort. */
void rescache_put_gone(rescache *rc, bool by_host, const char *key,
                       int64_t version);

/* The tenant record of id: true with *out filled (id included) when a
 * well-formed one is cached. */
bool rescache_get_tenant(rescache *rc, const char *id, store_tenant *out);

/* Caches t (active or suspended) unless a newer version is there.
 * ERR_OK, ERR_UNAVAILABLE (no Redis or it failed), ERR_INVAL (a tenant
 * still provisioning, or fields that do not fit the format). */
int rescache_put_tenant(rescache *rc, const store_tenant *t);

/* SET tenant:status:<tenant_id> status (no TTL), through libs/authn's
 * authn_record_state (a change moves its counter). ERR_OK, ERR_UNAVAILABLE
 * (no Redis or Redis failed), ERR_INVAL. */
int rescache_set_status(rescache *rc, const char *tenant_id,
                        const char *status) WARN_UNUSED;

/* Builds the Redis key of a tenant's status into out (cap bytes). */
void rescache_status_key(const char *tenant_id, char *out, size_t cap);

#endif
