/*
 * settings_cache.h - the tenants' channel settings (store_settings.h),
 * remembered per replica for a short TTL (NOTIFICATIONS_SETTINGS_CACHE_TTL,
 * default 5 s), so that the fan-out does not read PostgreSQL for every
 * event it turns into notifications.
 *
 * Freshness: UpdateSettings on this replica forgets the tenant at once
 * after its transaction commits (settings_cache_forget), and a read that
 * raced with it is never stored (libs/base/slotcache.h's epoch), so the
 * next event on this replica sees the change. Another replica keeps what
 * it read for at most the TTL: a change reaches every replica's events
 * within NOTIFICATIONS_SETTINGS_CACHE_TTL.
 *
 * Bounded: SETTINGS_CACHE_SLOTS tenants (hashed; a collision evicts).
 * Thread-safe. A NULL cache reads the store every time.
 */
#ifndef NOTIFICATIONS_SETTINGS_CACHE_H
#define NOTIFICATIONS_SETTINGS_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/notifications/store_settings.h"

#define SETTINGS_CACHE_SLOTS 1024

typedef struct settings_cache settings_cache;

/* ttl_ms > 0. Errors: ERR_INVAL, ERR_NOMEM. */
int settings_cache_new(int64_t ttl_ms, settings_cache **out) WARN_UNUSED;
void settings_cache_free(settings_cache *c); /* NULL-safe */

/* tid's settings: remembered, or read from st (store_get_settings) and
 * remembered. Errors: store_get_settings's. */
int settings_cache_get(settings_cache *c, store *st, const char *tid,
                       store_settings *out) WARN_UNUSED;

/* tid's remembered settings into *out, if any (true); nothing read. */
bool settings_cache_lookup(settings_cache *c, const char *tid,
                           store_settings *out);

/* Remembers s for tid, unless a forget happened since epoch
 * (settings_cache_epoch, taken before s was read). */
void settings_cache_put(settings_cache *c, const char *tid,
                        const store_settings *s, uint64_t epoch);
uint64_t settings_cache_epoch(settings_cache *c);

/* Forgets tid: its settings changed. NULL-safe. */
void settings_cache_forget(settings_cache *c, const char *tid);

#endif
