/*
 * replycache.c - JSON of large replies by their exact bytes (see
 * replycache.h).
 */
#include "services/gateway/replycache.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  pthread_mutex_t mu;
  const void *route; /* NULL: empty */
  uint8_t *payload;
  size_t len;
  char *json;
  size_t jlen;
} entry;

struct replycache {
  entry e[REPLYCACHE_SLOTS];
  unsigned char key[crypto_shorthash_KEYBYTES];
};

int replycache_new(replycache **out) {
  *out = NULL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  replycache *c = calloc(1, sizeof *c);
  if (c == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < REPLYCACHE_SLOTS; i++)
    pthread_mutex_init(&c->e[i].mu, NULL);
  crypto_shorthash_keygen(c->key);
  *out = c;
  return ERR_OK;
}

void replycache_free(replycache *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < REPLYCACHE_SLOTS; i++) {
    free(c->e[i].payload);
    free(c->e[i].json);
    pthread_mutex_destroy(&c->e[i].mu);
  }
  free(c);
}

bool replycache_wants(size_t len) {
  return len >= REPLYCACHE_MIN && len <= REPLYCACHE_MAX;
}

static entry *slot(replycache *c, const uint8_t *payload, size_t len) {
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, payload, len, c->key);
  uint64_t v = 0;
  memcpy(&v, h, sizeof v);
  return &c->e[v % REPLYCACHE_SLOTS];
}

bool replycache_get(replycache *c, const void *route, const uint8_t *payload,
                    size_t len, char **json, size_t *jlen) {
  *json = NULL;
  *jlen = 0;
  if (c == NULL || route == NULL || !replycache_wants(len)) return false;
  entry *e = slot(c, payload, len);
  pthread_mutex_lock(&e->mu);
  if (e->route == route && e->len == len &&
      memcmp(e->payload, payload, len) == 0) {
    *json = malloc(e->jlen + 1);
    if (*json != NULL) {
      memcpy(*json, e->json, e->jlen + 1);
      *jlen = e->jlen;
    }
  }
  pthread_mutex_unlock(&e->mu);
  return *json != NULL;
}

void replycache_put(replycache *c, const void *route, const uint8_t *payload,
                    size_t len, const char *json, size_t jlen) {
  if (c == NULL || route == NULL || !replycache_wants(len)) return;
  uint8_t *p = malloc(len);
  char *j = malloc(jlen + 1);
  if (p == NULL || j == NULL) {
    free(p);
    free(j);
    return;
  }
  memcpy(p, payload, len);
  memcpy(j, json, jlen);
  j[jlen] = '\0';
  entry *e = slot(c, payload, len);
  pthread_mutex_lock(&e->mu);
  uint8_t *old_p = e->payload;
  char *old_j = e->json;
  e->route = route;
  e->payload = p;
  e->len = len;
  e->json = j;
  e->jlen = jlen;
  pthread_mutex_unlock(&e->mu);
  free(old_p);
  free(old_j);
}
