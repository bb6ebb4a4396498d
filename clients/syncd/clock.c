/*
 * clock.c - the HLC, canonical JSON and hash, backoff (see clock.h).
 */
#include "clients/syncd/clock.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void hlc_tick(hlc *c, int64_t now_ms) {
  if (now_ms > c->wall) {
    c->wall = now_ms;
    c->counter = 0;
  } else {
    c->counter++;
  }
}

void hlc_recv(hlc *c, int64_t remote_ms, int64_t now_ms) {
  int64_t old = c->wall;
  int64_t w = old > remote_ms ? old : remote_ms;
  if (now_ms > w) w = now_ms;
  /* Same wall as before: order after it; a new wall starts at 0. */
  c->counter = w == old ? c->counter + 1 : 0;
  c->wall = w;
}

void hlc_format(const hlc *c, char out[32]) {
  snprintf(out, 32, "%013lld-%05lld", (long long)c->wall,
           (long long)c->counter);
}

char *canon_json(const json_t *v) {
  /* The gateway's flags for the text sync hashes (transcode.c). */
  return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

void canon_hash(const char *text, char out[65]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
  sodium_bin2hex(out, 65, h, sizeof h);
}

int64_t backoff_ms(int failures, int64_t base_ms, int64_t cap_ms,
                   uint32_t (*rnd)(uint32_t)) {
  if (failures < 1) failures = 1;
  int64_t hi = base_ms;
  for (int i = 1; i < failures && hi < cap_ms; i++) hi *= 2;
  if (hi > cap_ms) hi = cap_ms;
  int64_t lo = base_ms / 2 < hi ? base_ms / 2 : hi;
  uint32_t span = (uint32_t)(hi - lo + 1);
  return lo + (int64_t)rnd(span);
}
