/*
 * uuid.c - UUIDv7 with a per-process monotonic counter (see uuid.h).
 *
 * State is one mutex-protected (last_ms, counter) pair: cheap compared with a
 * syscall for randomness, and it makes ids from one process strictly
 * increasing, which keeps index inserts append-only.
 */
#include "libs/base/uuid.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms = -1;
static uint16_t uuid_counter; /* 12 bits used */

void uuid_v7(uuid *out) { uuid_v7_at(time_now_ms(), out); }

void uuid_v7_at(int64_t now, uuid *out) {
  uint8_t rnd[10];
  if (sodium_init() < 0) {
    /* libsodium cannot fail to initialise on Linux with a working
     * getrandom(); if it does, nothing random is safe to produce. */
    abort();
  }
  randombytes_buf(rnd, sizeof rnd);

  pthread_mutex_lock(&uuid_lock);
  if (now > uuid_last_ms) {
    uuid_last_ms = now;
    /* Seed the counter in the lower half so many ids fit in one ms. */
    uuid_counter = (uint16_t)(((rnd[0] << 8) | rnd[1]) & 0x07ff);
  } else { /* the same millisecond, or the clock went back */
    uuid_counter++;
    if (uuid_counter > 0x0fff) { /* counter exhausted: borrow the next ms */
      uuid_last_ms++;
      uuid_counter = 0;
    }
  }
  int64_t ms = uuid_last_ms;
  uint16_t ctr = uuid_counter;
  pthread_mutex_unlock(&uuid_lock);

  for (int i = 0; i < 6; i++)
    out->b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
  out->b[6] = (uint8_t)(0x70 | ((ctr >> 8) & 0x0f));
  out->b[7] = (uint8_t)(ctr & 0xff);
  memcpy(out->b + 8, rnd + 2, 8);
  out->b[8] = (uint8_t)(0x80 | (out->b[8] & 0x3f)); /* RFC 9562 variant */
}

static const char hexdig[] = "0123456789abcdef";

void uuid_format(const uuid *u, char out[UUID_STR_LEN + 1]) {
  size_t j = 0;
  for (int i = 0; i < UUID_LEN; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
    out[j++] = hexdig[u->b[i] >> 4];
    out[j++] = hexdig[u->b[i] & 0x0f];
  }
  out[j] = '\0';
}

int uuid_parse(const char *s, size_t len, uuid *out) {
  if (s == NULL || len != UUID_STR_LEN) return ERR_INVAL;
  size_t j = 0;
  for (int i = 0; i < UUID_LEN; i++) {
    if (j == 8 || j == 13 || j == 18 || j == 23) {
      if (s[j] != '-') return ERR_INVAL;
      j++;
    }
    int hi = str_hex_digit(s[j]), lo = str_hex_digit(s[j + 1]);
    if (hi < 0 || lo < 0) return ERR_INVAL;
    out->b[i] = (uint8_t)((hi << 4) | lo);
    j += 2;
  }
  return ERR_OK;
}

bool uuid_is_valid(const char *s) {
  uuid u;
  return s != NULL && uuid_parse(s, strlen(s), &u) == ERR_OK;
}

int uuid_canonical(const char *s, char out[UUID_STR_LEN + 1]) {
  uuid u;
  out[0] = '\0';
  if (s == NULL || uuid_parse(s, strnlen(s, UUID_STR_LEN + 1), &u) != ERR_OK)
    return ERR_INVAL;
  uuid_format(&u, out);
  return ERR_OK;
}

int64_t uuid_v7_str(char out[UUID_STR_LEN + 1]) {
  uuid u;
  uuid_v7(&u);
  uuid_format(&u, out);
  return uuid_v7_time_ms(&u);
}

int64_t uuid_v7_time_ms(const uuid *u) {
  int64_t ms = 0;
  for (int i = 0; i < 6; i++) ms = (ms << 8) | u->b[i];
  return ms;
}
