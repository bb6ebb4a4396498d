/*
 * idem.c - request hashes and "still running" markers of idempotent user
 * creation (see idem.h).
 *
 * The marker's Redis key names the tenant and a hash of (principal, key):
 * client-chosen keys may be long and hold anything, and need not be
 * readable in Redis.
 */
#include "services/auth/idem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "libs/obs/log.h"

#define MARKER_KEY_MAX 128

void auth_idem_hash(const uint8_t key[32], const char *method,
                    const void *payload, size_t len,
                    uint8_t out[AUTH_IDEM_HASH_LEN]) {
  static const char tag[] = AUTH_IDEM_CONTEXT;
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, 32, AUTH_IDEM_HASH_LEN);
  crypto_generichash_update(&st, (const unsigned char *)tag, sizeof tag);
  const char *m = method != NULL ? method : "";
  crypto_generichash_update(&st, (const unsigned char *)m, strlen(m) + 1);
  if (len > 0) crypto_generichash_update(&st, payload, len);
  crypto_generichash_final(&st, out, AUTH_IDEM_HASH_LEN);
}

static void marker_key(const char *tenant, const char *principal,
                       const char *key, char out[MARKER_KEY_MAX]) {
  uint8_t h[16];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof h);
  crypto_generichash_update(&st, (const unsigned char *)principal,
                            strlen(principal) + 1);
  crypto_generichash_update(&st, (const unsigned char *)key, strlen(key));
  crypto_generichash_final(&st, h, sizeof h);
  char hex[2 * sizeof h + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  snprintf(out, MARKER_KEY_MAX, "auth:idem:{%s}:%s", tenant, hex);
}

/* True when the marker k is held by holder (an earlier attempt of the
 * same call). */
static bool held_by(cache *redis, const char *k, const char *holder) {
  const char *argv[] = {"GET", k};
  cache_reply *r = NULL;
  bool same = false;
  if (cache_command(redis, true, 2, argv, NULL, &r) == ERR_OK) {
    const char *v = NULL;
    size_t n = 0;
    same = cache_reply_str(r, &v, &n) == ERR_OK && n == strlen(holder) &&
           memcmp(v, holder, n) == 0;
  }
  cache_reply_free(r);
  return same;
}

void auth_idem_claim(cache *redis, const char *tenant, const char *principal,
                     const char *key, const char *holder, uint32_t attempt,
                     int64_t ttl_ms, bool *claimed) {
  *claimed = true;
  if (redis == NULL) return;
  char k[MARKER_KEY_MAX], ttl[24];
  marker_key(tenant, principal, key, k);
  snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms > 1000 ? ttl_ms : 1000);
  const char *value = holder != NULL && holder[0] != '\0' ? holder : "1";
  const char *argv[] = {"SET", k, value, "NX", "PX", ttl};
  cache_reply *r = NULL;
  /* Not retried on a broken connection: a SET NX that did land would
   * then look like someone else's marker. */
  int rc = cache_command(redis, false, 6, argv, NULL, &r);
  if (rc == ERR_OK)
    *claimed = cache_reply_type(r) != CACHE_REPLY_NIL;
  else
    log_warn("idempotency marker unavailable; relying on the database", "error",
             cache_last_error()->message);
  cache_reply_free(r);
  /* A retry meeting its own earlier attempt's marker takes it over. */
  if (*claimed || attempt <= 1 || value != holder) return;
  if (held_by(redis, k, holder)) {
    const char *px[] = {"PEXPIRE", k, ttl};
    if (cache_command(redis, true, 3, px, NULL, NULL) != ERR_OK)
      log_warn("idempotency marker not renewed (expires by itself)", "error",
               cache_last_error()->message);
    *claimed = true;
  }
}

void auth_idem_release(cache *redis, const char *tenant, const char *principal,
                       const char *key) {
  if (redis == NULL) return;
  char k[MARKER_KEY_MAX];
  marker_key(tenant, principal, key, k);
  const char *argv[] = {"DEL", k};
  if (cache_command(redis, true, 2, argv, NULL, NULL) != ERR_OK)
    log_warn("idempotency marker not deleted (expires by itself)", "error",
             cache_last_error()->message);
}
