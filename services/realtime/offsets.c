/*
 * offsets.c - channel offsets and epochs in Redis (see offsets.h).
 *
 * Two Lua scripts, each atomic: NEXT returns the offset an event already
 * has, or increments the channel's counter and remembers it for the
 * event; CURRENT reads the counter and makes the epoch when missing. The
 * epoch is made here (libsodium's random bytes) and passed as an argument,
 * because scripts must not draw random numbers themselves.
 */
#include "services/realtime/offsets.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 256

static const char kNext[] =
    "local seen = redis.call('GET', KEYS[2])\n"
    "local o\n"
    "if seen then o = tonumber(seen)\n"
    "else o = redis.call('HINCRBY', KEYS[1], 'offset', 1) end\n"
    "local e = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not e then e = ARGV[1]; redis.call('HSET', KEYS[1], 'epoch', e) end\n"
    "if not seen then redis.call('SET', KEYS[2], o, 'PX', ARGV[2]) end\n"
    "return {o, e}\n";

static const char kCurrent[] =
    "local e = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not e then e = ARGV[1]; redis.call('HSET', KEYS[1], 'epoch', e) end\n"
    "local o = redis.call('HGET', KEYS[1], 'offset') or '0'\n"
    "return {tonumber(o), e}\n";

struct offsets {
  cache *redis;
  cache_script *next, *current;
};

int offsets_new(cache *redis, offsets **out) {
  *out = NULL;
  if (redis == NULL) return ERR_INVAL;
  offsets *o = calloc(1, sizeof *o);
  if (o == NULL) return ERR_NOMEM;
  o->redis = redis;
  int rc = cache_script_new(kNext, &o->next);
  if (rc == ERR_OK) rc = cache_script_new(kCurrent, &o->current);
  if (rc != ERR_OK) {
    offsets_free(o);
    return rc;
  }
  *out = o;
  return ERR_OK;
}

void offsets_free(offsets *o) {
  if (o == NULL) return;
  cache_script_free(o->next);
  cache_script_free(o->current);
  free(o);
}

static void new_epoch(char out[OFFSETS_EPOCH_MAX + 1]) {
  unsigned char raw[8];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(out, OFFSETS_EPOCH_MAX + 1, raw, sizeof raw);
}

/* {offset, epoch} out of a script's reply. */
static int read_pair(const cache_reply *r, int64_t *offset,
                     char epoch[OFFSETS_EPOCH_MAX + 1]) {
  const char *e = NULL;
  size_t elen = 0;
  if (cache_reply_len(r) != 2 || cache_reply_int_at(r, 0, offset) != ERR_OK ||
      cache_reply_str(cache_reply_at(r, 1), &e, &elen) != ERR_OK || elen == 0 ||
      elen > OFFSETS_EPOCH_MAX)
    return ERR_PROTO;
  memcpy(epoch, e, elen);
  epoch[elen] = '\0';
  return ERR_OK;
}

static int run(offsets *o, const cache_script *s, int nkeys,
               const char *const *keys, int64_t *offset,
               char epoch[OFFSETS_EPOCH_MAX + 1]) {
  char fresh[OFFSETS_EPOCH_MAX + 1], ttl[24];
  new_epoch(fresh);
  snprintf(ttl, sizeof ttl, "%d", OFFSETS_EVENT_TTL_MS);
  const char *args[] = {fresh, ttl};
  cache_reply *r = NULL;
  int rc = cache_eval(o->redis, s, nkeys, keys, 2, args, &r);
  if (rc == ERR_OK) rc = read_pair(r, offset, epoch);
  cache_reply_free(r);
  return rc;
}

int offsets_next(offsets *o, const char *channel, const char *event_id,
                 int64_t *offset, char epoch[OFFSETS_EPOCH_MAX + 1]) {
  char chan[KEY_MAX], ev[KEY_MAX];
  int a = snprintf(chan, sizeof chan, "realtime:chan:%s", channel);
  int b = snprintf(ev, sizeof ev, "realtime:ev:%s:%s", channel, event_id);
  if (a < 0 || (size_t)a >= sizeof chan || b < 0 || (size_t)b >= sizeof ev)
    return ERR_INVAL;
  const char *keys[] = {chan, ev};
  return run(o, o->next, 2, keys, offset, epoch);
}

int offsets_current(offsets *o, const char *channel, int64_t *offset,
                    char epoch[OFFSETS_EPOCH_MAX + 1]) {
  char chan[KEY_MAX];
  int a = snprintf(chan, sizeof chan, "realtime:chan:%s", channel);
  if (a < 0 || (size_t)a >= sizeof chan) return ERR_INVAL;
  const char *keys[] = {chan};
  return run(o, o->current, 1, keys, offset, epoch);
}
