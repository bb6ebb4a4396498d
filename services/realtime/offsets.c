/*
 * offsets.c - channel offsets, epochs and history in Redis (see
 * offsets.h).
 *
 * Three Lua scripts, each atomic, all starting with EPOCH: a channel
 * without an epoch gets the one passed in, and its history is deleted in
 * the same step (history is tied to the epoch it was written under).
 * NEXT returns the offset an event already has in this epoch, or
 * increments the counter, remembers the offset for the event and appends
 * the event to the history, trimmed by count and age. CURRENT reads the
 * counter. READ reads the counter and the history together. The epoch and
 * the time are made here (libsodium's random bytes, the wall clock) and
 * passed as arguments, because scripts must not draw random numbers or
 * read the clock before writing.
 */
#include "services/realtime/offsets.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"

#define KEY_MAX 256

/* KEYS[1] the hash, KEYS[2] the history; ARGV[1] a fresh epoch. */
#define EPOCH                                                                  \
  "local e = redis.call('HGET', KEYS[1], 'epoch')\n"                           \
  "local fresh = false\n"                                                      \
  "if not e then\n"                                                            \
  "  e = ARGV[1]; fresh = true\n"                                              \
  "  redis.call('DEL', KEYS[2])\n"                                             \
  "  redis.call('HDEL', KEYS[1], 'offset')\n"                                  \
  "  redis.call('HSET', KEYS[1], 'epoch', e)\n"                                \
  "end\n"

/* KEYS[3] the event's key; ARGV[2] its TTL, ARGV[3] now (ms), ARGV[4] the
 * history's size, ARGV[5] its TTL (ms), ARGV[6] the event's JSON. */
static const char kNext[] = EPOCH
    "if not fresh then\n"
    "  local seen = redis.call('GET', KEYS[3])\n"
    "  if seen then\n"
    "    local so, se = string.match(seen, '^(%d+) (.+)$')\n"
    "    if so and se == e then return {tonumber(so), e} end\n"
    "  end\n"
    "end\n"
    "local o = redis.call('HINCRBY', KEYS[1], 'offset', 1)\n"
    "redis.call('SET', KEYS[3], o .. ' ' .. e, 'PX', ARGV[2])\n"
    "redis.call('RPUSH', KEYS[2], o .. ' ' .. ARGV[3] .. ' ' .. ARGV[6])\n"
    "redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)\n"
    "local old = tonumber(ARGV[3]) - tonumber(ARGV[5])\n"
    "while true do\n"
    "  local h = redis.call('LINDEX', KEYS[2], 0)\n"
    "  if not h then break end\n"
    "  local t = tonumber(string.match(h, '^%d+ (%d+) '))\n"
    "  if t and t >= old then break end\n"
    "  redis.call('LPOP', KEYS[2])\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[5])\n"
    "return {o, e}\n";

static const char kCurrent[] =
    EPOCH "local o = redis.call('HGET', KEYS[1], 'offset') or '0'\n"
          "return {tonumber(o), e}\n";

/* ARGV[2] since (< 0: none), ARGV[3] the client's epoch, ARGV[4] now
 * (ms), ARGV[5] the history's TTL (ms), ARGV[6] limit (0: none).
 * Returns {offset, epoch, complete, entries...}. */
static const char kRead[] =
    EPOCH "local o = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')\n"
          "local since = tonumber(ARGV[2])\n"
          "local limit = tonumber(ARGV[6])\n"
          "if since >= 0 and (ARGV[3] ~= e or since > o) then return {o, e, 0} "
          "end\n"
          "local old = tonumber(ARGV[4]) - tonumber(ARGV[5])\n"
          "local kept = {}\n"
          "for _, h in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do\n"
          "  local ho, ht = string.match(h, '^(%d+) (%d+) ')\n"
          "  if ho and tonumber(ho) > since and tonumber(ht) >= old then\n"
          "    kept[#kept + 1] = h\n"
          "  end\n"
          "end\n"
          "local complete = 0\n"
          "if since >= 0 and #kept == o - since then complete = 1 end\n"
          "if limit > 0 and #kept > limit then\n"
          "  complete = 0\n"
          "  if since >= 0 then kept = {unpack(kept, 1, limit)}\n"
          "  else kept = {unpack(kept, #kept - limit + 1, #kept)} end\n"
          "end\n"
          "local out = {o, e, complete}\n"
          "for i = 1, #kept do out[#out + 1] = kept[i] end\n"
          "return out\n";

struct offsets {
  cache *redis;
  offsets_options opt;
  cache_script *next, *current, *read;
};

int offsets_new(cache *redis, const offsets_options *opt, offsets **out) {
  *out = NULL;
  if (redis == NULL || opt == NULL || opt->history_size < 1 ||
      opt->history_ttl_ms < 1)
    return ERR_INVAL;
  offsets *o = calloc(1, sizeof *o);
  if (o == NULL) return ERR_NOMEM;
  o->redis = redis;
  o->opt = *opt;
  int rc = cache_script_new(kNext, &o->next);
  if (rc == ERR_OK) rc = cache_script_new(kCurrent, &o->current);
  if (rc == ERR_OK) rc = cache_script_new(kRead, &o->read);
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
  cache_script_free(o->read);
  free(o);
}

static void new_epoch(char out[OFFSETS_EPOCH_MAX + 1]) {
  unsigned char raw[8];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(out, OFFSETS_EPOCH_MAX + 1, raw, sizeof raw);
}

/* {offset, epoch, ...} out of a script's reply. */
static int read_pair(const cache_reply *r, int64_t *offset,
                     char epoch[OFFSETS_EPOCH_MAX + 1]) {
  const char *e = NULL;
  size_t elen = 0;
  if (cache_reply_len(r) < 2 || cache_reply_int_at(r, 0, offset) != ERR_OK ||
      cache_reply_str(cache_reply_at(r, 1), &e, &elen) != ERR_OK || elen == 0 ||
      elen > OFFSETS_EPOCH_MAX)
    return ERR_PROTO;
  memcpy(epoch, e, elen);
  epoch[elen] = '\0';
  return ERR_OK;
}

static int keys_for(const char *channel, char chan[KEY_MAX],
                    char hist[KEY_MAX]) {
  int a = snprintf(chan, KEY_MAX, "realtime:chan:%s", channel);
  int b = snprintf(hist, KEY_MAX, "realtime:hist:%s", channel);
  return a < 0 || a >= KEY_MAX || b < 0 || b >= KEY_MAX ? ERR_INVAL : ERR_OK;
}

int offsets_next(offsets *o, const char *channel, const char *event_id,
                 const char *event, size_t len, int64_t *offset,
                 char epoch[OFFSETS_EPOCH_MAX + 1]) {
  char chan[KEY_MAX], hist[KEY_MAX], ev[KEY_MAX];
  int b = snprintf(ev, sizeof ev, "realtime:ev:%s:%s", channel, event_id);
  if (keys_for(channel, chan, hist) != ERR_OK || b < 0 ||
      (size_t)b >= sizeof ev || memchr(event, '\0', len) != NULL)
    return ERR_INVAL;
  char *text = malloc(len + 1);
  if (text == NULL) return ERR_NOMEM;
  memcpy(text, event, len);
  text[len] = '\0';
  char fresh[OFFSETS_EPOCH_MAX + 1], ttl[24], now[24], size[24], httl[24];
  new_epoch(fresh);
  snprintf(ttl, sizeof ttl, "%d", OFFSETS_EVENT_TTL_MS);
  snprintf(now, sizeof now, "%" PRId64, time_now_ms());
  snprintf(size, sizeof size, "%zu", o->opt.history_size);
  snprintf(httl, sizeof httl, "%" PRId64, o->opt.history_ttl_ms);
  const char *keys[] = {chan, hist, ev};
  const char *args[] = {fresh, ttl, now, size, httl, text};
  cache_reply *r = NULL;
  int rc = cache_eval(o->redis, o->next, 3, keys, 6, args, &r);
  if (rc == ERR_OK) rc = read_pair(r, offset, epoch);
  cache_reply_free(r);
  free(text);
  return rc;
}

int offsets_current(offsets *o, const char *channel, int64_t *offset,
                    char epoch[OFFSETS_EPOCH_MAX + 1]) {
  char chan[KEY_MAX], hist[KEY_MAX];
  if (keys_for(channel, chan, hist) != ERR_OK) return ERR_INVAL;
  char fresh[OFFSETS_EPOCH_MAX + 1];
  new_epoch(fresh);
  const char *keys[] = {chan, hist};
  const char *args[] = {fresh};
  cache_reply *r = NULL;
  int rc = cache_eval(o->redis, o->current, 2, keys, 1, args, &r);
  if (rc == ERR_OK) rc = read_pair(r, offset, epoch);
  cache_reply_free(r);
  return rc;
}

/* The entries of a READ reply (from element 3 on) into h->pubs. */
static int read_entries(offsets_history *h) {
  size_t total = cache_reply_len(h->reply);
  int64_t complete = 0;
  if (total < 3 || cache_reply_int_at(h->reply, 2, &complete) != ERR_OK)
    return ERR_PROTO;
  h->complete = complete == 1;
  if (total == 3) return ERR_OK;
  h->pubs = calloc(total - 3, sizeof *h->pubs);
  if (h->pubs == NULL) return ERR_NOMEM;
  for (size_t i = 3; i < total; i++) {
    const char *s = NULL;
    size_t len = 0;
    int64_t when = 0;
    offsets_pub *p = &h->pubs[h->n];
    if (cache_reply_str(cache_reply_at(h->reply, i), &s, &len) != ERR_OK ||
        offsets_entry_parse(s, len, &p->offset, &when, &p->event, &p->len) !=
            ERR_OK)
      return ERR_PROTO;
    h->n++;
  }
  return ERR_OK;
}

int offsets_read(offsets *o, const char *channel, int64_t since,
                 const char *epoch, size_t limit, offsets_history *out) {
  memset(out, 0, sizeof *out);
  char chan[KEY_MAX], hist[KEY_MAX];
  if (keys_for(channel, chan, hist) != ERR_OK) return ERR_INVAL;
  char fresh[OFFSETS_EPOCH_MAX + 1], sn[24], now[24], httl[24], lim[24];
  new_epoch(fresh);
  snprintf(sn, sizeof sn, "%" PRId64, since < 0 ? (int64_t)-1 : since);
  snprintf(now, sizeof now, "%" PRId64, time_now_ms());
  snprintf(httl, sizeof httl, "%" PRId64, o->opt.history_ttl_ms);
  snprintf(lim, sizeof lim, "%zu", limit);
  const char *keys[] = {chan, hist};
  const char *args[] = {fresh, sn, epoch != NULL ? epoch : "", now, httl, lim};
  int rc = cache_eval(o->redis, o->read, 2, keys, 6, args, &out->reply);
  if (rc == ERR_OK) rc = read_pair(out->reply, &out->offset, out->epoch);
  if (rc == ERR_OK) rc = read_entries(out);
  return rc;
}

void offsets_history_free(offsets_history *h) {
  if (h == NULL) return;
  free(h->pubs);
  cache_reply_free(h->reply);
  memset(h, 0, sizeof *h);
}

/* A decimal number of 1..18 digits at s[*i], then one space. */
static bool number_then_space(const char *s, size_t len, size_t *i,
                              int64_t *out) {
  int64_t v = 0;
  size_t start = *i;
  while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < 18)
    v = v * 10 + (s[(*i)++] - '0');
  if (*i == start || *i >= len || s[*i] != ' ') return false;
  (*i)++;
  *out = v;
  return true;
}

int offsets_entry_parse(const char *s, size_t len, int64_t *offset,
                        int64_t *time_ms, const char **event, size_t *evlen) {
  size_t i = 0;
  if (s == NULL || !number_then_space(s, len, &i, offset) ||
      !number_then_space(s, len, &i, time_ms) || i >= len)
    return ERR_PROTO;
  *event = s + i;
  *evlen = len - i;
  return ERR_OK;
}

bool offsets_is_new(int64_t seen, const char *seen_epoch, int64_t offset,
                    const char *epoch) {
  return strcmp(seen_epoch, epoch) != 0 || offset > seen;
}
