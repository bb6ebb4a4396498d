/*
 * menucache.h - the menu (ListProducts) in Redis, per tenant and
 * audience, invalidated by every write that changes a product or its
 * stock before that write is answered.
 *
 * KEYS (shared by all replicas)
 *   orders:menu:gen:<tid>          the tenant's menu generation (INCR)
 *   orders:menu:<aud>:<tid>        "<gen> " + serialised
 *                                  ListProductsResponse, TTL ttl_ms;
 *                                  aud is "staff" (inactive products
 *                                  too) or "public" (customers)
 *
 * THE RACE IT CLOSES. A reader that misses reads the database, then
 * fills the cache; a writer commits, then invalidates. If the reader's
 * database read happened before the writer's commit but its fill lands
 * after the writer's invalidation, a plain "DEL then SET" would leave
 * the stale menu cached until the TTL. So the reader notes the
 * generation BEFORE reading the database, and fills with a Lua script
 * that writes only if the generation is still the one it noted; the
 * writer's invalidation is INCR of the generation (plus DEL of both
 * entries, to free the memory) in one script. Every interleaving then
 * ends with either no entry or an entry read after the last commit. A
 * hit is only taken when the entry's generation equals the current one
 * (one MGET), so an entry written under an old generation is never
 * served even if the DEL was lost.
 *
 * REDIS DOWN. Nothing fails: a read that cannot use Redis reads the
 * database; an invalidation that cannot reach Redis is remembered (per
 * tenant, bounded) and retried before the next menu read of that tenant
 * by this replica (which reads the database until it succeeds) and by
 * menucache_retry (the janitor); entries expire after ttl_ms in any case.
 * Every Redis failure counts in orders_menu_cache_errors_total.
 *
 * Thread-safe.
 */
#ifndef ORDERS_MENUCACHE_H
#define ORDERS_MENUCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

#define MENUCACHE_PENDING_MAX 1024 /* tenants with an invalidation owed */

typedef struct menucache menucache;

/* redis may be NULL (no cache: every get misses). ttl_ms > 0. Errors:
 * ERR_INVAL, ERR_NOMEM. */
int menucache_new(cache *redis, int64_t ttl_ms, menucache **out) WARN_UNUSED;
void menucache_free(menucache *m); /* NULL-safe */

enum menucache_hit {
  MENUCACHE_HIT,  /* *val holds the serialised ListProductsResponse */
  MENUCACHE_MISS, /* read the database, then menucache_put with *gen */
  MENUCACHE_SKIP, /* Redis unusable now: read the database, do not put */
};

/* Looks the tenant's menu up for an audience (staff: true for staff+).
 * On HIT *val and *len hold a malloc'd copy (caller frees). On MISS *gen
 * is the generation to pass to menucache_put. */
enum menucache_hit menucache_get(menucache *m, const char *tid, bool staff,
                                 uint8_t **val, size_t *len, int64_t *gen);

/* Fills the entry if the generation is still gen (else does nothing).
 * Best effort: failures are counted, not returned. */
void menucache_put(menucache *m, const char *tid, bool staff, int64_t gen,
                   const uint8_t *val, size_t len);

/* After a committed change of tid's menu: bump the generation and drop
 * both entries. ERR_OK, or ERR_UNAVAILABLE when Redis could not be told
 * (the invalidation is then owed and retried, see above). */
int menucache_invalidate(menucache *m, const char *tid);

/* Retries owed invalidations; returns how many are still owed. */
size_t menucache_retry(menucache *m);

/* ------------------------------------------------------ pure helpers --- */

/* Key names (for tests and operators). cap >= 80. */
void menucache_gen_key(const char *tid, char *out, size_t cap);
void menucache_val_key(const char *tid, bool staff, char *out, size_t cap);

/* Splits an entry "<gen> <payload>": ERR_OK with *gen and the payload's
 * offset, ERR_INVAL when malformed. */
int menucache_parse(const char *val, size_t len, int64_t *gen,
                    size_t *payload_off) WARN_UNUSED;

#endif
