/*
 * revlog.c - the revocation records and their change counter (see
 * revlog.h).
 */
#include "libs/authn/revlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* KEYS[1] the record, KEYS[2] the counter; ARGV[1] the value, ARGV[2]
 * the TTL in ms ("0": none). Returns the counter (0: unchanged). */
static const char kScript[] =
    "local old = redis.call('GET', KEYS[1])\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], ARGV[1])\n"
    "end\n"
    "if old == ARGV[1] then return 0 end\n"
    "return redis.call('INCR', KEYS[2])\n";

static cache_script *g_script;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void make_script(void) {
  if (cache_script_new(kScript, &g_script) != ERR_OK) g_script = NULL;
}

int authn_record_state(cache *redis, const char *key, const char *value,
                       int64_t ttl_ms) {
  if (redis == NULL || key == NULL || key[0] == '\0' || value == NULL ||
      value[0] == '\0' || ttl_ms < 0)
    return ERR_INVAL;
  pthread_once(&g_once, make_script);
  if (g_script == NULL) return ERR_NOMEM;
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
  const char *keys[] = {key, AUTHN_REVOCATIONS_KEY};
  const char *args[] = {value, ttl};
  cache_reply *r = NULL;
  int rc = cache_eval(redis, g_script, 2, keys, 2, args, &r);
  cache_reply_free(r);
  return rc;
}

int authn_revocations_read(cache *redis, int64_t *out) {
  *out = 0;
  if (redis == NULL) return ERR_INVAL;
  const char *argv[] = {"GET", AUTHN_REVOCATIONS_KEY};
  cache_reply *r = NULL;
  int rc = cache_command(redis, true, 2, argv, NULL, &r);
  if (rc == ERR_OK && cache_reply_type(r) != CACHE_REPLY_NIL &&
      cache_reply_int(r, out) != ERR_OK)
    rc = ERR_PROTO;
  cache_reply_free(r);
  return rc;
}
