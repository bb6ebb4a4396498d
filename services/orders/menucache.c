/*
 * menucache.c - the Redis menu cache with generations (see menucache.h).
 *
 * Entries hold protobuf bytes (NULs included), so fills go through
 * cache_command with explicit lengths (EVAL of a small script) rather
 * than cache_eval, whose arguments are C strings. Keys carry the tenant
 * in a hash tag ({tid}) so a Redis Cluster keeps a tenant's keys in one
 * slot, as the scripts require.
 */
#include "services/orders/menucache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"

/* KEYS[1] gen, KEYS[2] entry; ARGV[1] gen noted before the database
 * read, ARGV[2] entry, ARGV[3] ttl ms. */
static const char fill_script[] =
    "local g = redis.call('GET', KEYS[1]) or '0'\n"
    "if g ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n"
    "return 1\n";

/* KEYS[1] gen, KEYS[2..3] entries. */
static const char invalidate_script[] = "redis.call('INCR', KEYS[1])\n"
                                        "redis.call('DEL', KEYS[2], KEYS[3])\n"
                                        "return 1\n";

struct menucache {
  cache *redis;
  int64_t ttl_ms;
  cache_script *invalidate;
  pthread_mutex_t mu;
  char pending[MENUCACHE_PENDING_MAX][UUID_STR_LEN + 1];
  size_t npending;
  int64_t skip_all_until_ms; /* pending list overflowed: until every
                                stale entry has expired */
  metrics_child *hit, *miss, *skip, *errors;
};

#define KEY_MAX 96

void menucache_gen_key(const char *tid, char *out, size_t cap) {
  snprintf(out, cap, "orders:menu:gen:{%s}", tid);
}

void menucache_val_key(const char *tid, bool staff, char *out, size_t cap) {
  snprintf(out, cap, "orders:menu:%s:{%s}", staff ? "staff" : "public", tid);
}

int menucache_parse(const char *val, size_t len, int64_t *gen,
                    size_t *payload_off) {
  size_t i = 0;
  int64_t g = 0;
  while (i < len && i < 20 && val[i] >= '0' && val[i] <= '9') {
    g = g * 10 + (val[i] - '0');
    i++;
  }
  if (i == 0 || i >= len || val[i] != ' ') return ERR_INVAL;
  *gen = g;
  *payload_off = i + 1;
  return ERR_OK;
}

int menucache_new(cache *redis, int64_t ttl_ms, menucache **out) {
  *out = NULL;
  if (ttl_ms <= 0) return ERR_INVAL;
  menucache *m = calloc(1, sizeof *m);
  if (m == NULL) return ERR_NOMEM;
  m->redis = redis;
  m->ttl_ms = ttl_ms;
  int rc = cache_script_new(invalidate_script, &m->invalidate);
  if (rc != ERR_OK) {
    free(m);
    return rc;
  }
  pthread_mutex_init(&m->mu, NULL);
  static const char *const labels[] = {"result"};
  metrics_family *f =
      metrics_counter("orders_menu_cache_total",
                      "ListProducts lookups by cache result", 1, labels);
  const char *h[] = {"hit"}, *mi[] = {"miss"}, *s[] = {"skip"};
  m->hit = metrics_child_get(f, h);
  m->miss = metrics_child_get(f, mi);
  m->skip = metrics_child_get(f, s);
  m->errors = metrics_child_get(
      metrics_counter("orders_menu_cache_errors_total",
                      "Redis failures of the menu cache (reads went to "
                      "PostgreSQL)",
                      0, NULL),
      NULL);
  *out = m;
  return ERR_OK;
}

void menucache_free(menucache *m) {
  if (m == NULL) return;
  cache_script_free(m->invalidate);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* ----------------------------------------------------- owed invalidations ---
 */

static bool pending_has(menucache *m, const char *tid) {
  for (size_t i = 0; i < m->npending; i++)
    if (strcmp(m->pending[i], tid) == 0) return true;
  return false;
}

static void pending_add(menucache *m, const char *tid) {
  pthread_mutex_lock(&m->mu);
  if (!pending_has(m, tid)) {
    if (m->npending < MENUCACHE_PENDING_MAX)
      snprintf(m->pending[m->npending++], UUID_STR_LEN + 1, "%s", tid);
    else
      m->skip_all_until_ms = time_mono_ms() + m->ttl_ms;
  }
  pthread_mutex_unlock(&m->mu);
}

static void pending_remove(menucache *m, const char *tid) {
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->npending; i++) {
    if (strcmp(m->pending[i], tid) == 0) {
      memcpy(m->pending[i], m->pending[--m->npending], UUID_STR_LEN + 1);
      break;
    }
  }
  pthread_mutex_unlock(&m->mu);
}

static int send_invalidate(menucache *m, const char *tid) {
  char g[KEY_MAX], s[KEY_MAX], p[KEY_MAX];
  menucache_gen_key(tid, g, sizeof g);
  menucache_val_key(tid, true, s, sizeof s);
  menucache_val_key(tid, false, p, sizeof p);
  const char *keys[] = {g, s, p};
  cache_reply *r = NULL;
  int rc = cache_eval(m->redis, m->invalidate, 3, keys, 0, NULL, &r);
  cache_reply_free(r);
  return rc;
}

int menucache_invalidate(menucache *m, const char *tid) {
  if (m == NULL || m->redis == NULL) return ERR_OK;
  int rc = send_invalidate(m, tid);
  if (rc == ERR_OK) return ERR_OK;
  metrics_inc(m->errors);
  log_warn("menu cache invalidation failed; retrying later", "tenant_id", tid,
           "error", err_str(rc));
  pending_add(m, tid);
  return ERR_UNAVAILABLE;
}

size_t menucache_retry(menucache *m) {
  if (m == NULL || m->redis == NULL) return 0;
  char tid[UUID_STR_LEN + 1];
  size_t left = 0;
  for (;;) {
    pthread_mutex_lock(&m->mu);
    left = m->npending;
    if (left > 0) memcpy(tid, m->pending[left - 1], sizeof tid);
    pthread_mutex_unlock(&m->mu);
    if (left == 0) return 0;
    if (send_invalidate(m, tid) != ERR_OK) {
      metrics_inc(m->errors);
      return left;
    }
    pending_remove(m, tid);
  }
}

/* ---------------------------------------------------------- get / put --- */

enum menucache_hit menucache_get(menucache *m, const char *tid, bool staff,
                                 uint8_t **val, size_t *len, int64_t *gen) {
  *val = NULL;
  *len = 0;
  *gen = 0;
  if (m == NULL || m->redis == NULL) return MENUCACHE_SKIP;
  pthread_mutex_lock(&m->mu);
  bool owed = pending_has(m, tid);
  bool skip_all = m->skip_all_until_ms > time_mono_ms();
  pthread_mutex_unlock(&m->mu);
  if (skip_all) {
    metrics_inc(m->skip);
    return MENUCACHE_SKIP;
  }
  if (owed) {
    if (send_invalidate(m, tid) != ERR_OK) {
      metrics_inc(m->errors);
      metrics_inc(m->skip);
      return MENUCACHE_SKIP;
    }
    pending_remove(m, tid);
  }
  char g[KEY_MAX], k[KEY_MAX];
  menucache_gen_key(tid, g, sizeof g);
  menucache_val_key(tid, staff, k, sizeof k);
  const char *argv[] = {"MGET", g, k};
  cache_reply *r = NULL;
  int rc = cache_command(m->redis, true, 3, argv, NULL, &r);
  if (rc != ERR_OK || cache_reply_len(r) != 2) {
    cache_reply_free(r);
    metrics_inc(m->errors);
    metrics_inc(m->skip);
    return MENUCACHE_SKIP;
  }
  int64_t cur = 0;
  const cache_reply *gr = cache_reply_at(r, 0), *vr = cache_reply_at(r, 1);
  if (cache_reply_type(gr) != CACHE_REPLY_NIL &&
      cache_reply_int(gr, &cur) != ERR_OK) {
    cache_reply_free(r);
    metrics_inc(m->errors);
    metrics_inc(m->skip);
    return MENUCACHE_SKIP;
  }
  *gen = cur;
  const char *s = NULL;
  size_t n = 0, off = 0;
  int64_t vgen = 0;
  if (cache_reply_type(vr) == CACHE_REPLY_STRING &&
      cache_reply_str(vr, &s, &n) == ERR_OK &&
      menucache_parse(s, n, &vgen, &off) == ERR_OK && vgen == cur) {
    size_t plen = n - off;
    uint8_t *copy = malloc(plen ? plen : 1);
    if (copy != NULL) {
      memcpy(copy, s + off, plen);
      *val = copy;
      *len = plen;
      cache_reply_free(r);
      metrics_inc(m->hit);
      return MENUCACHE_HIT;
    }
  }
  cache_reply_free(r);
  metrics_inc(m->miss);
  return MENUCACHE_MISS;
}

void menucache_put(menucache *m, const char *tid, bool staff, int64_t gen,
                   const uint8_t *val, size_t len) {
  if (m == NULL || m->redis == NULL) return;
  char g[KEY_MAX], k[KEY_MAX], gs[24], ttl[24];
  menucache_gen_key(tid, g, sizeof g);
  menucache_val_key(tid, staff, k, sizeof k);
  snprintf(gs, sizeof gs, "%" PRId64, gen);
  snprintf(ttl, sizeof ttl, "%" PRId64, m->ttl_ms);
  size_t glen = strlen(gs);
  char *entry = malloc(glen + 1 + len + 1);
  if (entry == NULL) return;
  memcpy(entry, gs, glen);
  entry[glen] = ' ';
  if (len > 0) memcpy(entry + glen + 1, val, len);
  const char *argv[] = {"EVAL", fill_script, "2", g, k, gs, entry, ttl};
  size_t lens[] = {4,    strlen(fill_script), 1,          strlen(g), strlen(k),
                   glen, glen + 1 + len,      strlen(ttl)};
  cache_reply *r = NULL;
  int rc = cache_command(m->redis, true, 8, argv, lens, &r);
  cache_reply_free(r);
  free(entry);
  if (rc != ERR_OK) {
    metrics_inc(m->errors);
    log_debug("menu cache fill skipped", "error", err_str(rc));
  }
}
