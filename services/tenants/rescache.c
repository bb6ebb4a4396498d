/*
 * rescache.c - Resolve cache and tenant status keys in Redis (see
 * rescache.h).
 *
 * The version compare runs inside Redis (one script, atomic), because a
 * read-compare-write from here would race with another replica's write.
 */
#include "services/tenants/rescache.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
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

struct rescache {
  cache *redis;
  int64_t ttl_ms;
  cache_script *put;
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
  int err = cache_set(rc->redis, k, status, strlen(status), 0);
  return err == ERR_OK ? ERR_OK : ERR_UNAVAILABLE;
}
