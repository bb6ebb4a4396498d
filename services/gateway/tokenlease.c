/*
 * tokenlease.c - leased rate-limit tokens (see tokenlease.h).
 */
#include "services/gateway/tokenlease.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
  pthread_mutex_t mu;
  char key[TOKENLEASE_KEY_MAX + 1]; /* "" = empty */
  int64_t tokens;                   /* leased, not yet used */
  int64_t until_ms;                 /* the lease (or refusal) ends */
  bool denied;                      /* a refusal, not a lease */
} slot;

struct tokenlease {
  slot *slots;
  size_t n;
  unsigned char hkey[crypto_shorthash_KEYBYTES];
};

int tokenlease_new(size_t slots, tokenlease **out) {
  *out = NULL;
  if (slots == 0 || slots > ((size_t)1 << 20)) return ERR_INVAL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  tokenlease *t = calloc(1, sizeof *t);
  if (t == NULL) return ERR_NOMEM;
  t->slots = calloc(slots, sizeof *t->slots);
  if (t->slots == NULL) {
    free(t);
    return ERR_NOMEM;
  }
  t->n = slots;
  for (size_t i = 0; i < slots; i++) pthread_mutex_init(&t->slots[i].mu, NULL);
  crypto_shorthash_keygen(t->hkey);
  *out = t;
  return ERR_OK;
}

void tokenlease_free(tokenlease *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->n; i++) pthread_mutex_destroy(&t->slots[i].mu);
  free(t->slots);
  free(t);
}

/* key's slot, locked; NULL for a key too long to lease. */
static slot *lock_slot(tokenlease *t, const char *key, size_t *klen) {
  *klen = strnlen(key, TOKENLEASE_KEY_MAX + 1);
  if (*klen == 0 || *klen > TOKENLEASE_KEY_MAX) return NULL;
  unsigned char h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)key, *klen, t->hkey);
  uint64_t v = 0;
  memcpy(&v, h, sizeof v);
  slot *s = &t->slots[v % t->n];
  pthread_mutex_lock(&s->mu);
  return s;
}

enum tokenlease_answer tokenlease_take(tokenlease *t, const char *key,
                                       int64_t now_ms, int64_t *retry_ms) {
  *retry_ms = 0;
  size_t klen = 0;
  slot *s = t ? lock_slot(t, key, &klen) : NULL;
  if (s == NULL) return TOKENLEASE_ASK;
  enum tokenlease_answer a = TOKENLEASE_ASK;
  if (strcmp(s->key, key) == 0 && now_ms < s->until_ms) {
    if (s->denied) {
      a = TOKENLEASE_DENIED;
      *retry_ms = s->until_ms - now_ms;
    } else if (s->tokens > 0) {
      s->tokens--;
      a = TOKENLEASE_TAKEN;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return a;
}

/* Makes s key's (evicting whatever it held) unless it is already. */
static void claim(slot *s, const char *key, size_t klen, int64_t now_ms) {
  if (strcmp(s->key, key) == 0 && now_ms < s->until_ms) return;
  memcpy(s->key, key, klen + 1);
  s->tokens = 0;
  s->denied = false;
  s->until_ms = 0;
}

void tokenlease_grant(tokenlease *t, const char *key, int64_t tokens,
                      int64_t now_ms, int64_t lease_ms) {
  size_t klen = 0;
  slot *s = (t && tokens > 0) ? lock_slot(t, key, &klen) : NULL;
  if (s == NULL) return;
  claim(s, key, klen, now_ms);
  if (s->denied) s->tokens = 0; /* granted after all: the refusal is over */
  s->denied = false;
  s->tokens += tokens;
  s->until_ms = now_ms + lease_ms;
  pthread_mutex_unlock(&s->mu);
}

void tokenlease_deny(tokenlease *t, const char *key, int64_t now_ms,
                     int64_t retry_ms) {
  size_t klen = 0;
  slot *s = (t && retry_ms > 0) ? lock_slot(t, key, &klen) : NULL;
  if (s == NULL) return;
  claim(s, key, klen, now_ms);
  /* Tokens still leased here stay usable: they were granted. */
  if (s->tokens == 0) {
    s->denied = true;
    s->until_ms = now_ms + retry_ms;
  }
  pthread_mutex_unlock(&s->mu);
}
