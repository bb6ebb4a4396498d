/*
 * rescache.c - Resolve cache and tenant status keys in Redis (see
 * rescache.h).
 *
 * The version compare runs inside Redis (one script, atomic), because a
 * read-compare-write from here would race with another replica's write.
 */
#include "services/tenants/rescache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/revlog.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"

/* KEYS[1] = key, ARGV[1] = version, ARGV[2] = value, ARGV[3] = ttl ms.
 * Returns 1 when written, 0 when a newer version is there. */
static const char put_script[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local v = tonumber(string.match(cur, '^(%d+)'))\n"
    "  if v and v > tonumber(ARGV[1]) then return 0 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "return 1\n";

#define OWED_MAX 256 /* tenants whose record write-through failed */

struct rescache {
  cache *redis;
  int64_t ttl_ms;
  cache_script *put;
  pthread_mutex_t mu; /* owed */
  char owed[OWED_MAX][UUID_STR_LEN + 1];
  size_t nowed;
  bool owed_overflow; /* more failed than fit: trust no record for a TTL */
  int64_t owed_until_ms;
};

#define KEY_MAX (32 + TENANTNAME_HOST_MAX)
#define VALUE_MAX 160

int rescache_new(cache *redis, int64_t ttl_ms, rescache **out) {
  *out = NULL;
  if (ttl_ms <= 0) return ERR_INVAL;
  rescache *rc = calloc(1, sizeof *rc);
  if (rc == NULL) return ERR_NOMEM;
  rc->redis = redis;
  rc->ttl_ms = ttl_ms;
  pthread_mutex_init(&rc->mu, NULL);
  int err = cache_script_new(put_script, &rc->put);
  if (err != ERR_OK) {
    free(rc);
    return err;
  }
  *out = rc;
  return ERR_OK;
}

void rescache_free(rescache *rc) {
  if (rc == NULL) return;
  cache_script_free(rc->put);
  pthread_mutex_destroy(&rc->mu);
  free(rc);
}

static void make_key(bool by_host, const char *k, char *out, size_t cap) {
  snprintf(out, cap, "tenants:resolve:%s:%s", by_host ? "host" : "slug", k);
}

void rescache_status_key(const char *tenant_id, char *out, size_t cap) {
  snprintf(out, cap, "tenant:status:%s", tenant_id);
}

/* Parses "<version> <id> <slug> <status>" or "<version> -". */
static enum rescache_hit parse(const char *v, store_resolved *out) {
  char *end = NULL;
  long long ver = strtoll(v, &end, 10);
  if (end == v || *end != ' ' || ver < 0) return RESCACHE_MISS;
  const char *p = end + 1;
  if (strcmp(p, "-") == 0) return RESCACHE_GONE;
  char id[UUID_STR_LEN + 1], slug[TENANTNAME_SLUG_MAX + 1], status[16];
  const char *sp1 = strchr(p, ' ');
  if (sp1 == NULL || (size_t)(sp1 - p) != UUID_STR_LEN) return RESCACHE_MISS;
  memcpy(id, p, UUID_STR_LEN);
  id[UUID_STR_LEN] = '\0';
  const char *s = sp1 + 1;
  const char *sp2 = strchr(s, ' ');
  if (sp2 == NULL || sp2 == s || (size_t)(sp2 - s) > TENANTNAME_SLUG_MAX)
    return RESCACHE_MISS;
  memcpy(slug, s, (size_t)(sp2 - s));
  slug[sp2 - s] = '\0';
  if (str_copy(status, sp2 + 1, sizeof status) >= sizeof status)
    return RESCACHE_MISS;
  if (!uuid_is_valid(id) ||
      (strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0))
    return RESCACHE_MISS;
  memcpy(out->tenant_id, id, sizeof id);
  memcpy(out->slug, slug, sizeof slug);
  memcpy(out->status, status, sizeof status);
  out->version = ver;
  return RESCACHE_FOUND;
}

enum rescache_hit rescache_get(rescache *rc, bool by_host, const char *key,
                               store_resolved *out) {
  if (rc == NULL || rc->redis == NULL) return RESCACHE_MISS;
  char k[KEY_MAX];
  make_key(by_host, key, k, sizeof k);
  char *v = NULL;
  size_t len = 0;
  if (cache_get(rc->redis, k, &v, &len) != ERR_OK) return RESCACHE_MISS;
  enum rescache_hit hit =
      len < VALUE_MAX && strlen(v) == len ? parse(v, out) : RESCACHE_MISS;
  free(v);
  return hit;
}

static void put_value(rescache *rc, bool by_host, const char *key,
                      int64_t version, const char *value) {
  if (rc == NULL || rc->redis == NULL) return;
  char k[KEY_MAX], ver[24], ttl[24];
  make_key(by_host, key, k, sizeof k);
  snprintf(ver, sizeof ver, "%" PRId64, version);
  snprintf(ttl, sizeof ttl, "%" PRId64, rc->ttl_ms);
  const char *keys[] = {k};
  const char *args[] = {ver, value, ttl};
  cache_reply *r = NULL;
  int err = cache_eval(rc->redis, rc->put, 1, keys, 3, args, &r);
  cache_reply_free(r);
  if (err != ERR_OK)
    log_debug("resolve cache write skipped", "error", err_str(err));
}

void rescache_put(rescache *rc, bool by_host, const char *key,
                  const store_resolved *r) {
  char v[VALUE_MAX];
  snprintf(v, sizeof v, "%" PRId64 " %s %s %s", r->version, r->tenant_id,
           r->slug, r->status);
  put_value(rc, by_host, key, r->version, v);
}

void rescache_put_gone(rescache *rc, bool by_host, const char *key,
                       int64_t version) {
  char v[VALUE_MAX];
  snprintf(v, sizeof v, "%" PRId64 " -", version);
  put_value(rc, by_host, key, version, v);
}

int rescache_set_status(rescache *rc, const char *tenant_id,
                        const char *status) {
  if (tenant_id == NULL || status == NULL || !uuid_is_valid(tenant_id))
    return ERR_INVAL;
  if (rc == NULL || rc->redis == NULL) return ERR_UNAVAILABLE;
  char k[64];
  rescache_status_key(tenant_id, k, sizeof k);
  /* Through libs/authn's writer: a change moves the counter that
   * verifiers keeping tokens alive (realtime) poll instead of every
   * token's records (libs/authn/revlog.h). */
  int err = authn_record_state(rc->redis, k, status, 0);
  return err == ERR_OK ? ERR_OK : ERR_UNAVAILABLE;
}

/* ------------------------------------------------------ tenant records --- */

#define TENANT_VALUE_MAX                                                       \
  (24 + 16 + 4 + RFC3339_MS_LEN + TENANTNAME_SLUG_MAX + STORE_NAME_BYTES + 8)

static void tenant_key(const char *id, char *out, size_t cap) {
  snprintf(out, cap, "tenants:tenant:%s", id);
}

/* The next space-separated field of *p into out (cap bytes): false when
 * missing, empty or too long. */
static bool field(const char **p, char *out, size_t cap) {
  const char *sp = strchr(*p, ' ');
  if (sp == NULL || sp == *p || (size_t)(sp - *p) >= cap) return false;
  memcpy(out, *p, (size_t)(sp - *p));
  out[sp - *p] = '\0';
  *p = sp + 1;
  return true;
}

static bool parse_tenant(const char *v, store_tenant *t) {
  char *end = NULL;
  long long ver = strtoll(v, &end, 10);
  if (end == v || *end != ' ' || ver < 0) return false;
  const char *p = end + 1;
  if (!field(&p, t->status, sizeof t->status) ||
      !field(&p, t->currency, sizeof t->currency) ||
      !field(&p, t->created_at, sizeof t->created_at) ||
      !field(&p, t->slug, sizeof t->slug) || *p == '\0' ||
      str_copy(t->name, p, sizeof t->name) >= sizeof t->name)
    return false;
  t->version = ver;
  return strcmp(t->status, "active") == 0 ||
         strcmp(t->status, "suspended") == 0;
}

/* A failed write-through may have left an older record in Redis (it was
 * unreachable for the write, not necessarily for the next read), so this
 * replica reads that tenant from the database until a write succeeds
 * (version-guarded: the database's newer record replaces it). */
static bool owed_find(rescache *rc, const char *id, size_t *at) {
  for (size_t i = 0; i < rc->nowed; i++)
    if (strcmp(rc->owed[i], id) == 0) {
      *at = i;
      return true;
    }
  return false;
}

static bool is_owed(rescache *rc, const char *id) {
  size_t at = 0;
  pthread_mutex_lock(&rc->mu);
  if (rc->owed_overflow && time_mono_ms() >= rc->owed_until_ms) {
    rc->owed_overflow = false; /* every record older than that expired */
  }
  bool owed = rc->owed_overflow || owed_find(rc, id, &at);
  pthread_mutex_unlock(&rc->mu);
  return owed;
}

static void set_owed(rescache *rc, const char *id, bool owed) {
  size_t at = 0;
  pthread_mutex_lock(&rc->mu);
  bool found = owed_find(rc, id, &at);
  if (owed && !found) {
    if (rc->nowed < OWED_MAX) {
      str_copy(rc->owed[rc->nowed++], id, UUID_STR_LEN + 1);
    } else {
      rc->owed_overflow = true;
      rc->owed_until_ms = time_mono_ms() + rc->ttl_ms;
    }
  } else if (!owed && found) {
    memcpy(rc->owed[at], rc->owed[--rc->nowed], UUID_STR_LEN + 1);
  }
  pthread_mutex_unlock(&rc->mu);
}

bool rescache_get_tenant(rescache *rc, const char *id, store_tenant *out) {
  if (rc == NULL || rc->redis == NULL || !uuid_is_valid(id)) return false;
  if (is_owed(rc, id)) return false;
  char k[64];
  tenant_key(id, k, sizeof k);
  char *v = NULL;
  size_t len = 0;
  if (cache_get(rc->redis, k, &v, &len) != ERR_OK) return false;
  store_tenant t;
  memset(&t, 0, sizeof t);
  bool ok = len < TENANT_VALUE_MAX && strlen(v) == len && parse_tenant(v, &t);
  free(v);
  if (!ok) return false;
  str_copy(t.id, id, sizeof t.id);
  *out = t;
  return true;
}

int rescache_put_tenant(rescache *rc, const store_tenant *t) {
  if ((strcmp(t->status, "active") != 0 &&
       strcmp(t->status, "suspended") != 0) ||
      !uuid_is_valid(t->id) || t->name[0] == '\0' || t->slug[0] == '\0' ||
      strchr(t->slug, ' ') != NULL || strchr(t->currency, ' ') != NULL ||
      strchr(t->created_at, ' ') != NULL || t->currency[0] == '\0' ||
      t->created_at[0] == '\0')
    return ERR_INVAL;
  if (rc == NULL || rc->redis == NULL) return ERR_UNAVAILABLE;
  char v[TENANT_VALUE_MAX], k[64], ver[24], ttl[24];
  int n = snprintf(v, sizeof v, "%" PRId64 " %s %s %s %s %s", t->version,
                   t->status, t->currency, t->created_at, t->slug, t->name);
  if (n < 0 || (size_t)n >= sizeof v) return ERR_INVAL;
  tenant_key(t->id, k, sizeof k);
  snprintf(ver, sizeof ver, "%" PRId64, t->version);
  snprintf(ttl, sizeof ttl, "%" PRId64, rc->ttl_ms);
  const char *keys[] = {k};
  const char *args[] = {ver, v, ttl};
  cache_reply *r = NULL;
  int err = cache_eval(rc->redis, rc->put, 1, keys, 3, args, &r);
  cache_reply_free(r);
  set_owed(rc, t->id, err != ERR_OK);
  return err == ERR_OK ? ERR_OK : ERR_UNAVAILABLE;
}
