/*
 * strmap.c - string-keyed hash map with keyed SipHash (see strmap.h).
 */
#include "services/realtime/strmap.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 64

typedef struct node {
  struct node *next;
  void *value;
  char key[];
} node;

struct strmap {
  node **buckets;
  size_t nbuckets, len;
  unsigned char k[crypto_shorthash_KEYBYTES];
};

static size_t bucket_of(const strmap *m, const char *key) {
  uint64_t h = 0;
  crypto_shorthash((unsigned char *)&h, (const unsigned char *)key, strlen(key),
                   m->k);
  return (size_t)(h & (m->nbuckets - 1));
}

int strmap_new(strmap **out) {
  *out = NULL;
  strmap *m = calloc(1, sizeof *m);
  if (m == NULL) return ERR_NOMEM;
  m->nbuckets = INITIAL_BUCKETS;
  m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
  if (m->buckets == NULL) {
    free(m);
    return ERR_NOMEM;
  }
  crypto_shorthash_keygen(m->k);
  *out = m;
  return ERR_OK;
}

void strmap_free(strmap *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->nbuckets; i++)
    for (node *n = m->buckets[i], *next; n != NULL; n = next) {
      next = n->next;
      free(n);
    }
  free(m->buckets);
  free(m);
}

/* Doubles the table; on out of memory it keeps the old one (only slower). */
static void grow(strmap *m) {
  size_t old = m->nbuckets;
  node **nb = calloc(old * 2, sizeof *nb);
  if (nb == NULL) return;
  node **ob = m->buckets;
  m->buckets = nb;
  m->nbuckets = old * 2;
  for (size_t i = 0; i < old; i++)
    for (node *n = ob[i], *next; n != NULL; n = next) {
      next = n->next;
      size_t b = bucket_of(m, n->key);
      n->next = nb[b];
      nb[b] = n;
    }
  free(ob);
}

void **strmap_slot(strmap *m, const char *key, bool create) {
  size_t b = bucket_of(m, key);
  for (node *n = m->buckets[b]; n != NULL; n = n->next)
    if (strcmp(n->key, key) == 0) return &n->value;
  if (!create) return NULL;
  if (m->len >= m->nbuckets) {
    grow(m);
    b = bucket_of(m, key);
  }
  size_t klen = strlen(key);
  node *n = malloc(sizeof *n + klen + 1);
  if (n == NULL) return NULL;
  memcpy(n->key, key, klen + 1);
  n->value = NULL;
  n->next = m->buckets[b];
  m->buckets[b] = n;
  m->len++;
  return &n->value;
}

void strmap_del(strmap *m, const char *key) {
  for (node **p = &m->buckets[bucket_of(m, key)]; *p != NULL; p = &(*p)->next) {
    if (strcmp((*p)->key, key) != 0) continue;
    node *n = *p;
    *p = n->next;
    free(n);
    m->len--;
    return;
  }
}

size_t strmap_len(const strmap *m) { return m->len; }

void strmap_each(const strmap *m,
                 void (*fn)(void *arg, const char *key, void *value),
                 void *arg) {
  for (size_t i = 0; i < m->nbuckets; i++)
    for (node *n = m->buckets[i]; n != NULL; n = n->next)
      fn(arg, n->key, n->value);
}
