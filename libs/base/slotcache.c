/*
 * slotcache.c - values with a TTL in a fixed table of hashed slots (see
 * slotcache.h).
 */
#include "libs/base/slotcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"

typedef struct slot {
  char key[SLOTCACHE_KEY_MAX + 1]; /* "": empty */
  int64_t expires_ms;              /* monotonic */
} slot;

struct slotcache {
  size_t nslots, value_size;
  int64_t ttl_ms;
  uint64_t epoch; /* forgets so far */
  pthread_mutex_t mu;
  slot *slots;
  unsigned char *values; /* nslots * value_size */
};

static size_t slot_of(const slotcache *c, const char *key) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return (size_t)(h % c->nslots);
}

int slotcache_new(size_t nslots, size_t value_size, int64_t ttl_ms,
                  slotcache **out) {
  *out = NULL;
  if (nslots == 0 || nslots > 65536 || value_size == 0 ||
      value_size > SLOTCACHE_VALUE_MAX || ttl_ms <= 0)
    return ERR_INVAL;
  slotcache *c = calloc(1, sizeof *c);
  if (c == NULL) return ERR_NOMEM;
  c->slots = calloc(nslots, sizeof *c->slots);
  c->values = calloc(nslots, value_size);
  if (c->slots == NULL || c->values == NULL) {
    slotcache_free(c);
    return ERR_NOMEM;
  }
  c->nslots = nslots;
  c->value_size = value_size;
  c->ttl_ms = ttl_ms;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return ERR_OK;
}

void slotcache_free(slotcache *c) {
  if (c == NULL) return;
  if (c->nslots > 0) pthread_mutex_destroy(&c->mu);
  free(c->slots);
  free(c->values);
  free(c);
}

static bool key_ok(const char *key) {
  return key != NULL && key[0] != '\0' &&
         strnlen(key, SLOTCACHE_KEY_MAX + 1) <= SLOTCACHE_KEY_MAX;
}

bool slotcache_get(slotcache *c, const char *key, void *out) {
  if (c == NULL || !key_ok(key)) return false;
  bool hit = false;
  size_t i = slot_of(c, key);
  pthread_mutex_lock(&c->mu);
  slot *s = &c->slots[i];
  if (strcmp(s->key, key) == 0 && s->expires_ms > time_mono_ms()) {
    memcpy(out, c->values + i * c->value_size, c->value_size);
    hit = true;
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}

uint64_t slotcache_epoch(slotcache *c) {
  if (c == NULL) return 0;
  pthread_mutex_lock(&c->mu);
  uint64_t e = c->epoch;
  pthread_mutex_unlock(&c->mu);
  return e;
}

void slotcache_put(slotcache *c, const char *key, const void *value,
                   uint64_t epoch) {
  if (c == NULL || !key_ok(key) || value == NULL) return;
  size_t i = slot_of(c, key);
  pthread_mutex_lock(&c->mu);
  if (c->epoch == epoch) {
    slot *s = &c->slots[i];
    memcpy(s->key, key, strlen(key) + 1);
    memcpy(c->values + i * c->value_size, value, c->value_size);
    s->expires_ms = time_mono_ms() + c->ttl_ms;
  }
  pthread_mutex_unlock(&c->mu);
}

void slotcache_forget(slotcache *c, const char *key) {
  if (c == NULL || !key_ok(key)) return;
  size_t i = slot_of(c, key);
  pthread_mutex_lock(&c->mu);
  c->epoch++;
  slot *s = &c->slots[i];
  if (strcmp(s->key, key) == 0) memset(s, 0, sizeof *s);
  pthread_mutex_unlock(&c->mu);
}
