/*
 * reqid.c - see reqid.h. A malformed client id is replaced, not refused:
 * tracing is a courtesy, and refusing a request over it would help no one.
 *
 * Generated ids are UUIDv7 made here rather than with uuid_v7(): that one
 * takes a process-wide lock and a getrandom() system call per id (it keeps
 * ids strictly increasing, which database keys want). A request id needs
 * neither, and on the /healthz path the system call was a visible share
 * of the time, so each thread draws its random bits from a buffer that is
 * refilled from libsodium 1 KiB at a time.
 */
#include "services/gateway/reqid.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"

#define POOL 1024

static __thread uint8_t pool[POOL];
static __thread size_t pool_left;

static void random10(uint8_t out[10]) {
  if (pool_left < 10) {
    if (sodium_init() < 0) abort(); /* nothing random can be made */
    randombytes_buf(pool, POOL);
    pool_left = POOL;
  }
  memcpy(out, pool + POOL - pool_left, 10);
  sodium_memzero(pool + POOL - pool_left, 10);
  pool_left -= 10;
}

static void fresh(char out[REQID_MAX + 1]) {
  uint8_t r[10];
  random10(r);
  uuid u;
  uint64_t ms = (uint64_t)time_now_ms();
  for (int i = 0; i < 6; i++) u.b[i] = (uint8_t)(ms >> (40 - 8 * i));
  u.b[6] = (uint8_t)(0x70 | (r[0] & 0x0f)); /* version 7 */
  u.b[7] = r[1];
  u.b[8] = (uint8_t)(0x80 | (r[2] & 0x3f)); /* RFC 9562 variant */
  memcpy(u.b + 9, r + 3, 7);
  uuid_format(&u, out);
}

bool reqid_valid(const char *s) {
  if (s == NULL) return false;
  size_t n = strnlen(s, REQID_MAX + 1);
  return n > 0 && n <= REQID_MAX && str_is_printable(s, n);
}

void reqid_choose(const char *client, char out[REQID_MAX + 1]) {
  if (reqid_valid(client)) {
    (void)str_copy(out, client, REQID_MAX + 1);
    return;
  }
  fresh(out);
}
