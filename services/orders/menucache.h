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
 * (read first, then the entry), so an entry written under an old generation is
 * never served even if the DEL was lost.
 *
 * EACH REPLICA'S COPY. Moving the whole menu out of Redis and unpacking
 * it on every read cost more than the answer (100 products: ~15 KB per
 * request through Redis and the decoder). So each replica keeps the
 * last menu it read or filled per tenant and audience, unpacked
 * (menupage.h), with the generation it was read under, in a small
 * direct-mapped table (MENUCACHE_LOCAL_SLOTS; a collision only evicts).
 * A read still asks Redis for the current generation (one GET of a few
 * bytes) and uses its copy only when the generations match, so the
 * read-after-write guarantee above is unchanged: a write answered before
 * this read bumped the generation, and the copy is not served.
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
#include "services/orders/menupage.h"

#define MENUCACHE_PENDING_MAX 1024 /* tenants with an invalidation owed */
#define MENUCACHE_LOCAL_SLOTS 256  /* menus kept unpacked per replica */

typedef struct menucache menucache;

/* redis may be NULL (no cache: every get misses). ttl_ms > 0. Errors:
 * ERR_INVAL, ERR_NOMEM. */
int menucache_new(cache *redis, int64_t ttl_ms, menucache **out) WARN_UNUSED;
void menucache_free(menucache *m); /* NULL-safe */

enum menucache_hit {
  MENUCACHE_HIT,  /* *page holds the current menu (one reference) */
  MENUCACHE_MISS, /* read the database, then menucache_put with *gen */
  MENUCACHE_SKIP, /* Redis unusable now: read the database, do not put */
};

/* Looks the tenant's menu up for an audience (staff: true for staff+).
 * On HIT *page holds a reference (menupage_unref). On MISS *gen is the
 * generation to build the page with and pass to menucache_put. */
enum menucache_hit menucache_get(menucache *m, const char *tid, bool staff,
                                 menupage **page, int64_t *gen);

/* Fills Redis with page (built under the generation noted at the miss) if
 * that generation is still current (else does nothing there), and keeps
 * it as this replica's copy. Best effort: failures are counted, not
 * returned. page stays the caller's (a reference is taken). */
void menucache_put(menucache *m, const char *tid, bool staff, menupage *page);

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
