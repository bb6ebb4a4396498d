/*
 * heartbeat.c - beats into Redis, flushed to PostgreSQL in batches, and
 * the offline sweep (see heartbeat.h for the design).
 */
#include "services/sync/heartbeat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/obs/log.h"
#include "libs/svc/periodic.h"
#include "services/sync/events.h"

#define DIRTY_KEY "sync:hb:dirty"
#define HASH_PREFIX "sync:hb:"
#define HASH_TTL_MS "86400000"
#define MEMBER_LEN (2 * UUID_STR_LEN + 1) /* "<tid>:<did>" */
#define SWEEP_BATCH 1000

/* KEYS[1] the device's hash, KEYS[2] the dirty set. ARGV: seen ms,
 * app_version ("" keeps it), pending ("" keeps it), the set member. */
static const char kRecord[] =
    "redis.call('HSET', KEYS[1], 'seen', ARGV[1])\n"
    "if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'ver', ARGV[2]) end\n"
    "if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'pending', ARGV[3]) "
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], " HASH_TTL_MS ")\n"
    "redis.call('SADD', KEYS[2], ARGV[4])\n"
    "return 1\n";

/* KEYS[1] the dirty set. ARGV: count, hash prefix. Pops count members
 * and returns member, seen, ver, pending for each ('' when absent). */
static const char kPop[] =
    "local m = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))\n"
    "local out = {}\n"
    "for _, k in ipairs(m) do\n"
    "  local h = redis.call('HMGET', ARGV[2] .. k, 'seen', 'ver', 'pending')\n"
    "  out[#out + 1] = k\n"
    "  out[#out + 1] = h[1] or ''\n"
    "  out[#out + 1] = h[2] or ''\n"
    "  out[#out + 1] = h[3] or ''\n"
    "end\n"
    "return out\n";

struct heartbeat {
  heartbeat_config c;
  cache_script *record, *pop;
  periodic *round;
};

int heartbeat_record(heartbeat *h, const char *tid, const char *did,
                     const char *app_version, int32_t pending, int64_t now_ms) {
  if (h->c.redis == NULL) return ERR_UNAVAILABLE;
  char key[sizeof HASH_PREFIX + MEMBER_LEN], member[MEMBER_LEN + 1];
  char seen[24], pend[16] = "";
  snprintf(member, sizeof member, "%s:%s", tid, did);
  snprintf(key, sizeof key, HASH_PREFIX "%s", member);
  snprintf(seen, sizeof seen, "%lld", (long long)now_ms);
  if (pending >= 0) snprintf(pend, sizeof pend, "%d", (int)pending);
  const char *keys[] = {key, DIRTY_KEY};
  const char *args[] = {seen, app_version != NULL ? app_version : "", pend,
                        member};
  cache_reply *r = NULL;
  int rc = cache_eval(h->c.redis, h->record, 2, keys, 4, args, &r);
  cache_reply_free(r);
  return rc == ERR_OK ? ERR_OK : ERR_UNAVAILABLE;
}

/* Element i of an array reply as a NUL-terminated copy into out. */
static void reply_text(const cache_reply *r, size_t i, char *out, size_t cap) {
  const char *s = NULL;
  size_t len = 0;
  out[0] = '\0';
  if (cache_reply_str(cache_reply_at(r, i), &s, &len) != ERR_OK) return;
  if (len >= cap) len = cap - 1;
  memcpy(out, s, len);
  out[len] = '\0';
}

typedef struct popped {
  char tid[UUID_STR_LEN + 1];
  store_beat b;
  char ver[HEARTBEAT_VERSION_MAX + 1];
  bool has_ver;
} popped;

static int by_tenant(const void *x, const void *y) {
  return strcmp(((const popped *)x)->tid, ((const popped *)y)->tid);
}

/* Parses the pop script's answer into out[0..*n). Malformed members
 * (never written by heartbeat_record) are dropped. */
static void parse_popped(const cache_reply *r, popped *out, size_t *n) {
  *n = 0;
  size_t len = cache_reply_len(r);
  for (size_t i = 0; i + 3 < len && *n < HEARTBEAT_BATCH; i += 4) {
    char member[MEMBER_LEN + 1], seen[24], pend[16];
    popped *p = &out[*n];
    memset(p, 0, sizeof *p);
    reply_text(r, i, member, sizeof member);
    reply_text(r, i + 1, seen, sizeof seen);
    reply_text(r, i + 2, p->ver, sizeof p->ver);
    reply_text(r, i + 3, pend, sizeof pend);
    char *colon = strchr(member, ':');
    if (colon == NULL || seen[0] == '\0') continue;
    *colon = '\0';
    if (!uuid_is_valid(member) || !uuid_is_valid(colon + 1)) continue;
    str_copy(p->tid, member, sizeof p->tid);
    str_copy(p->b.did, colon + 1, sizeof p->b.did);
    p->b.seen_ms = strtoll(seen, NULL, 10);
    p->has_ver = p->ver[0] != '\0';
    p->b.pending = pend[0] != '\0' ? (int32_t)strtol(pend, NULL, 10) : -1;
    (*n)++;
  }
}

/* Writes out[0..n), sorted by tenant, one transaction per tenant. */
static bool flush_popped(heartbeat *h, popped *ps, size_t n) {
  qsort(ps, n, sizeof *ps, by_tenant);
  store_beat *beats = calloc(n ? n : 1, sizeof *beats);
  if (beats == NULL) return false;
  bool wrote = false;
  for (size_t i = 0; i < n;) {
    size_t j = i, k = 0;
    for (; j < n && strcmp(ps[j].tid, ps[i].tid) == 0; j++, k++) {
      beats[k] = ps[j].b;
      beats[k].app_version = ps[j].has_ver ? ps[j].ver : NULL;
    }
    int rc = store_beats_apply(h->c.store, ps[i].tid, beats, k,
                               events_device_status, NULL);
    if (rc != ERR_OK)
      log_warn("heartbeats not flushed", "tenant_id", ps[i].tid, "error",
               err_str(rc));
    else
      wrote = true;
    i = j;
  }
  free(beats);
  return wrote;
}

/* Pops and writes dirty devices until fewer than a batch are left. */
static void flush(heartbeat *h) {
  if (h->c.redis == NULL) return;
  popped *ps = calloc(HEARTBEAT_BATCH, sizeof *ps);
  if (ps == NULL) return;
  char count[16];
  snprintf(count, sizeof count, "%d", HEARTBEAT_BATCH);
  const char *keys[] = {DIRTY_KEY};
  const char *args[] = {count, HASH_PREFIX};
  size_t n = 0;
  do {
    cache_reply *r = NULL;
    int rc = cache_eval(h->c.redis, h->pop, 1, keys, 2, args, &r);
    n = 0;
    if (rc == ERR_OK)
      parse_popped(r, ps, &n);
    else
      log_warn("heartbeats not read from Redis", "error",
               cache_last_error()->message);
    cache_reply_free(r);
    if (n > 0 && flush_popped(h, ps, n)) outbox_kick(h->c.events);
  } while (n == HEARTBEAT_BATCH);
  free(ps);
}

void heartbeat_run_once(heartbeat *h) {
  flush(h);
  size_t marked = 0;
  int rc;
  do {
    rc = store_sweep_offline(h->c.store, 2 * h->c.interval_ms, SWEEP_BATCH,
                             events_device_status, NULL, &marked);
    if (rc == ERR_OK && marked > 0) outbox_kick(h->c.events);
  } while (rc == ERR_OK && marked == SWEEP_BATCH);
  if (rc != ERR_OK) log_warn("offline sweep failed", "error", err_str(rc));
}

static void round_fn(void *arg) { heartbeat_run_once(arg); }

int heartbeat_new(const heartbeat_config *cfg, heartbeat **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->events == NULL ||
      cfg->interval_ms <= 0 || cfg->flush_ms <= 0)
    return ERR_INVAL;
  heartbeat *h = calloc(1, sizeof *h);
  if (h == NULL) return ERR_NOMEM;
  h->c = *cfg;
  int rc = cache_script_new(kRecord, &h->record);
  if (rc == ERR_OK) rc = cache_script_new(kPop, &h->pop);
  periodic_options po = {.name = "heartbeats",
                         .interval_ms = cfg->flush_ms,
                         .fn = round_fn,
                         .arg = h};
  if (rc == ERR_OK) rc = periodic_start(&po, &h->round);
  if (rc != ERR_OK) {
    heartbeat_free(h);
    return rc;
  }
  *out = h;
  return ERR_OK;
}

void heartbeat_free(heartbeat *h) {
  if (h == NULL) return;
  periodic_stop(h->round);
  cache_script_free(h->record);
  cache_script_free(h->pop);
  free(h);
}
