/*
 * slotcache.h - a small per-process cache of fixed-size values keyed by a
 * short string (a tenant id), each remembered for a TTL.
 *
 * A fixed table of slots indexed by a hash of the key: a key that
 * collides with another simply evicts it (looked up again next time), so
 * memory is bounded without eviction bookkeeping. Values are copied in
 * and out (value_size bytes), so a reader never holds a pointer into the
 * table.
 *
 * Invalidation without a stale refill: a reader that misses takes
 * slotcache_epoch() before it reads the source and hands that epoch to
 * slotcache_put; every slotcache_forget advances the epoch, so a value
 * read before a forget (possibly older than the change that caused it) is
 * never stored after it.
 *
 * Thread-safe (one mutex; the critical sections are a memcpy).
 */
#ifndef BASE_SLOTCACHE_H
#define BASE_SLOTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define SLOTCACHE_KEY_MAX 63     /* bytes of a key */
#define SLOTCACHE_VALUE_MAX 4096 /* bytes of a value */

typedef struct slotcache slotcache;

/* nslots 1..65536, value_size 1..SLOTCACHE_VALUE_MAX, ttl_ms > 0.
 * Errors: ERR_INVAL, ERR_NOMEM. */
int slotcache_new(size_t nslots, size_t value_size, int64_t ttl_ms,
                  slotcache **out) WARN_UNUSED;
void slotcache_free(slotcache *c); /* NULL-safe */

/* Copies key's live value into out (value_size bytes) and returns true;
 * false when absent, expired, evicted or c is NULL. */
bool slotcache_get(slotcache *c, const char *key, void *out);

/* The epoch to pass to slotcache_put for a value read from now on. */
uint64_t slotcache_epoch(slotcache *c);

/* Remembers value for key for the TTL, unless a forget happened since
 * epoch was taken (then nothing). A key longer than SLOTCACHE_KEY_MAX is
 * not remembered. */
void slotcache_put(slotcache *c, const char *key, const void *value,
                   uint64_t epoch);

/* Forgets key (its value changed) and advances the epoch. */
void slotcache_forget(slotcache *c, const char *key);

#endif
