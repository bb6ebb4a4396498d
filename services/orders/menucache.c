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

/* A generation that does not exist yet (a tenant never written since
 * Redis started, or Redis lost its data) starts at Redis's clock in
 * microseconds, not at 0: every generation a replica may still hold a
 * copy under is then smaller than any new one, so a copy from before the
 * loss can never match again (no ABA). */
#define GEN_INIT                                                               \
  "if redis.call('EXISTS', KEYS[1]) == 0 then\n"                               \
  "  local t = redis.call('TIME')\n"                                           \
  "  redis.call('SET', KEYS[1], t[1] .. string.sub('00000' .. t[2], -6))\n"    \
  "end\n"

/* KEYS[1] gen, KEYS[2..3] entries. */
static const char invalidate_script[] =
    GEN_INIT "redis.call('INCR', KEYS[1])\n"
             "redis.call('DEL', KEYS[2], KEYS[3])\n"
             "return 1\n";

/* KEYS[1] gen. Returns the (now existing) generation. */
static const char gen_init_script[] =
    GEN_INIT "return redis.call('GET', KEYS[1])\n";

struct menucache {
  cache *redis;
  int64_t ttl_ms;
  cache_script *invalidate, *gen_init;
  pthread_mutex_t mu;
  char pending[MENUCACHE_PENDING_MAX][UUID_STR_LEN + 1];
  size_t npending;
  int64_t skip_all_until_ms; /* pending list overflowed: until every
                                stale entry has expired */
  metrics_child *hit, *local, *miss, *skip, *errors;
  struct local_slot {
    pthread_mutex_t mu;
    char tid[UUID_STR_LEN + 1];
    bool staff;
    menupage *page; /* NULL: empty */
  } slots[MENUCACHE_LOCAL_SLOTS];
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
  if (rc == ERR_OK) rc = cache_script_new(gen_init_script, &m->gen_init);
  if (rc != ERR_OK) {
    cache_script_free(m->invalidate);
    free(m);
    return rc;
  }
  pthread_mutex_init(&m->mu, NULL);
  for (size_t i = 0; i < MENUCACHE_LOCAL_SLOTS; i++)
    pthread_mutex_init(&m->slots[i].mu, NULL);
  static const char *const labels[] = {"result"};
  metrics_family *f =
      metrics_counter("orders_menu_cache_total",
                      "ListProducts lookups by cache result", 1, labels);
  const char *h[] = {"hit"}, *mi[] = {"miss"}, *s[] = {"skip"},
             *lo[] = {"local"};
  m->hit = metrics_child_get(f, h);
  m->local = metrics_child_get(f, lo);
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
  cache_script_free(m->gen_init);
  pthread_mutex_destroy(&m->mu);
  for (size_t i = 0; i < MENUCACHE_LOCAL_SLOTS; i++) {
    menupage_unref(m->slots[i].page);
    pthread_mutex_destroy(&m->slots[i].mu);
  }
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

/* ------------------------------------------------- this replica's copy --- */

static struct local_slot *slot_of(menucache *m, const char *tid, bool staff) {
  /* FNV-1a: tenant ids are the service's own UUIDs, not attacker-chosen
   * strings, and a collision only evicts a copy. */
  uint32_t h = staff ? 0x9e3779b9u : 2166136261u;
  for (const char *c = tid; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
  return &m->slots[h % MENUCACHE_LOCAL_SLOTS];
}

/* This replica's copy for (tid, staff) if read under generation gen. */
static menupage *local_get(menucache *m, const char *tid, bool staff,
                           int64_t gen) {
  struct local_slot *sl = slot_of(m, tid, staff);
  menupage *p = NULL;
  pthread_mutex_lock(&sl->mu);
  if (sl->page != NULL && sl->staff == staff && strcmp(sl->tid, tid) == 0 &&
      menupage_gen(sl->page) == gen)
    p = menupage_ref(sl->page);
  pthread_mutex_unlock(&sl->mu);
  return p;
}

static void local_keep(menucache *m, const char *tid, bool staff,
                       menupage *page) {
  struct local_slot *sl = slot_of(m, tid, staff);
  menupage *old = NULL;
  pthread_mutex_lock(&sl->mu);
  bool same =
      sl->page != NULL && sl->staff == staff && strcmp(sl->tid, tid) == 0;
  /* Generations only grow: never replace a newer copy by an older one. */
  if (!same || menupage_gen(sl->page) <= menupage_gen(page)) {
    old = sl->page;
    sl->page = menupage_ref(page);
    sl->staff = staff;
    snprintf(sl->tid, sizeof sl->tid, "%s", tid);
  }
  pthread_mutex_unlock(&sl->mu);
  menupage_unref(old); /* outside the lock: may free a whole menu */
}

/* ---------------------------------------------------------- get / put --- */

/* Redis failed: count it, and read the database this time. */
static enum menucache_hit skip(menucache *m, cache_reply *r) {
  cache_reply_free(r);
  metrics_inc(m->errors);
  metrics_inc(m->skip);
  return MENUCACHE_SKIP;
}

/* Pays an owed invalidation of tid before it is read (false: Redis is
 * still failing). */
static bool settle_owed(menucache *m, const char *tid, bool *skip_all) {
  pthread_mutex_lock(&m->mu);
  bool owed = pending_has(m, tid);
  *skip_all = m->skip_all_until_ms > time_mono_ms();
  pthread_mutex_unlock(&m->mu);
  if (!owed || *skip_all) return true;
  if (send_invalidate(m, tid) != ERR_OK) return false;
  pending_remove(m, tid);
  return true;
}

/* The entry in Redis as a page, if it was written under generation cur. */
static enum menucache_hit shared_get(menucache *m, const char *tid, bool staff,
                                     int64_t cur, menupage **page) {
  char k[KEY_MAX];
  menucache_val_key(tid, staff, k, sizeof k);
  const char *argv[] = {"GET", k};
  cache_reply *r = NULL;
  if (cache_command(m->redis, true, 2, argv, NULL, &r) != ERR_OK)
    return skip(m, r);
  const char *s = NULL;
  size_t n = 0, off = 0;
  int64_t vgen = 0;
  if (cache_reply_type(r) != CACHE_REPLY_STRING ||
      cache_reply_str(r, &s, &n) != ERR_OK ||
      menucache_parse(s, n, &vgen, &off) != ERR_OK || vgen != cur) {
    cache_reply_free(r);
    metrics_inc(m->miss);
    return MENUCACHE_MISS;
  }
  size_t plen = n - off;
  uint8_t *copy = malloc(plen ? plen : 1);
  if (copy != NULL) memcpy(copy, s + off, plen);
  cache_reply_free(r);
  if (copy == NULL || menupage_new(copy, plen, cur, page) != ERR_OK) {
    metrics_inc(m->miss); /* garbage or no memory: rebuild it */
    return MENUCACHE_MISS;
  }
  local_keep(m, tid, staff, *page);
  metrics_inc(m->hit);
  return MENUCACHE_HIT;
}

/* The tenant's generation, made if it does not exist (GEN_INIT). */
static int current_gen(menucache *m, const char *tid, int64_t *cur) {
  char g[KEY_MAX];
  menucache_gen_key(tid, g, sizeof g);
  const char *argv[] = {"GET", g};
  cache_reply *r = NULL;
  int rc = cache_command(m->redis, true, 2, argv, NULL, &r);
  if (rc == ERR_OK && cache_reply_type(r) == CACHE_REPLY_NIL) {
    cache_reply_free(r);
    r = NULL;
    const char *keys[] = {g};
    rc = cache_eval(m->redis, m->gen_init, 1, keys, 0, NULL, &r);
  }
  if (rc == ERR_OK) rc = cache_reply_int(r, cur);
  cache_reply_free(r);
  return rc;
}

enum menucache_hit menucache_get(menucache *m, const char *tid, bool staff,
                                 menupage **page, int64_t *gen) {
  *page = NULL;
  *gen = 0;
  if (m == NULL || m->redis == NULL) return MENUCACHE_SKIP;
  bool skip_all = false;
  if (!settle_owed(m, tid, &skip_all)) return skip(m, NULL);
  if (skip_all) {
    metrics_inc(m->skip);
    return MENUCACHE_SKIP;
  }
  int64_t cur = 0;
  if (current_gen(m, tid, &cur) != ERR_OK) return skip(m, NULL);
  *gen = cur;
  if ((*page = local_get(m, tid, staff, cur)) != NULL) {
    metrics_inc(m->local);
    return MENUCACHE_HIT;
  }
  return shared_get(m, tid, staff, cur, page);
}

void menucache_put(menucache *m, const char *tid, bool staff, menupage *page) {
  if (m == NULL || m->redis == NULL) return;
  size_t len = 0;
  const uint8_t *val = menupage_bytes(page, &len);
  char g[KEY_MAX], k[KEY_MAX], gs[24], ttl[24];
  menucache_gen_key(tid, g, sizeof g);
  menucache_val_key(tid, staff, k, sizeof k);
  snprintf(gs, sizeof gs, "%" PRId64, menupage_gen(page));
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
    return;
  }
  /* Kept even when the fill lost its race: the copy carries the
   * generation it was read under and is served only while that is
   * still Redis's current one. */
  local_keep(m, tid, staff, page);
}
