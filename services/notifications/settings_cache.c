/*
 * settings_cache.c - channel settings per tenant with a TTL (see
 * settings_cache.h): libs/base/slotcache holding store_settings values.
 */
#include "services/notifications/settings_cache.h"

#include <stdlib.h>

#include "libs/base/slotcache.h"

struct settings_cache {
  slotcache *slots;
};

int settings_cache_new(int64_t ttl_ms, settings_cache **out) {
  *out = NULL;
  if (ttl_ms <= 0) return ERR_INVAL;
  settings_cache *c = calloc(1, sizeof *c);
  if (c == NULL) return ERR_NOMEM;
  int rc = slotcache_new(SETTINGS_CACHE_SLOTS, sizeof(store_settings), ttl_ms,
                         &c->slots);
  if (rc != ERR_OK) {
    free(c);
    return rc;
  }
  *out = c;
  return ERR_OK;
}

void settings_cache_free(settings_cache *c) {
  if (c == NULL) return;
  slotcache_free(c->slots);
  free(c);
}

uint64_t settings_cache_epoch(settings_cache *c) {
  return c != NULL ? slotcache_epoch(c->slots) : 0;
}

void settings_cache_put(settings_cache *c, const char *tid,
                        const store_settings *s, uint64_t epoch) {
  if (c != NULL) slotcache_put(c->slots, tid, s, epoch);
}

bool settings_cache_lookup(settings_cache *c, const char *tid,
                           store_settings *out) {
  return c != NULL && slotcache_get(c->slots, tid, out);
}

int settings_cache_get(settings_cache *c, store *st, const char *tid,
                       store_settings *out) {
  if (settings_cache_lookup(c, tid, out)) return ERR_OK;
  uint64_t epoch = settings_cache_epoch(c); /* before the read */
  int rc = store_get_settings(st, tid, out);
  if (rc == ERR_OK) settings_cache_put(c, tid, out, epoch);
  return rc;
}

void settings_cache_forget(settings_cache *c, const char *tid) {
  if (c != NULL) slotcache_forget(c->slots, tid);
}
