/*
 * presence.c - channel presence in Redis (see presence.h).
 *
 * Three Lua scripts. JOIN writes every (client, "<expiry> <user>") pair
 * with one HSET and pushes the key's expiry out; LEAVE is an HDEL; LIST
 * reads the hash, deletes the entries whose expiry passed and returns the
 * rest (client, user, client, user, ...), at most PRESENCE_MAX pairs.
 */
#include "services/realtime/presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"

#define KEY_MAX 128

/* KEYS[1] hash; ARGV[1] expiry ms (absolute), ARGV[2] key ttl ms, then
 * client, user pairs. */
static const char kJoin[] =
    "local exp = ARGV[1]\n"
    "local args = {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  args[#args + 1] = ARGV[i]\n"
    "  args[#args + 1] = exp .. ' ' .. ARGV[i + 1]\n"
    "end\n"
    "if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

static const char kLeave[] = "return redis.call('HDEL', KEYS[1], ARGV[1])\n";

/* KEYS[1] hash; ARGV[1] now ms, ARGV[2] most pairs returned. */
static const char kList[] =
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local now, max, out, dead = tonumber(ARGV[1]), tonumber(ARGV[2]), {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  local v = all[i + 1]\n"
    "  local sp = string.find(v, ' ', 1, true)\n"
    "  local exp = sp and tonumber(string.sub(v, 1, sp - 1))\n"
    "  if exp == nil or exp <= now then\n"
    "    dead[#dead + 1] = all[i]\n"
    "  elseif #out < 2 * max then\n"
    "    out[#out + 1] = all[i]\n"
    "    out[#out + 1] = string.sub(v, sp + 1)\n"
    "  end\n"
    "end\n"
    "if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end\n"
    "return out\n";

struct presence {
  cache *redis;
  int64_t ttl_ms;
  cache_script *join, *leave, *list;
};

int presence_new(cache *redis, int64_t ttl_ms, presence **out) {
  *out = NULL;
  if (redis == NULL || ttl_ms < 1) return ERR_INVAL;
  presence *p = calloc(1, sizeof *p);
  if (p == NULL) return ERR_NOMEM;
  p->redis = redis;
  p->ttl_ms = ttl_ms;
  int rc = cache_script_new(kJoin, &p->join);
  if (rc == ERR_OK) rc = cache_script_new(kLeave, &p->leave);
  if (rc == ERR_OK) rc = cache_script_new(kList, &p->list);
  if (rc != ERR_OK) {
    presence_free(p);
    return rc;
  }
  *out = p;
  return ERR_OK;
}

void presence_free(presence *p) {
  if (p == NULL) return;
  cache_script_free(p->join);
  cache_script_free(p->leave);
  cache_script_free(p->list);
  free(p);
}

static int key_for(const char *channel, char key[KEY_MAX]) {
  int n = snprintf(key, KEY_MAX, "realtime:pres:%s", channel);
  return n < 0 || n >= KEY_MAX ? ERR_INVAL : ERR_OK;
}

int presence_join(presence *p, const char *channel, const char *const *clients,
                  const char *const *users, size_t n) {
  char key[KEY_MAX], exp[24], ttl[24];
  if (key_for(channel, key) != ERR_OK || n > PRESENCE_BATCH) return ERR_INVAL;
  for (size_t i = 0; i < n; i++)
    if (strlen(clients[i]) > PRESENCE_ID_MAX ||
        strlen(users[i]) > PRESENCE_ID_MAX)
      return ERR_INVAL;
  snprintf(exp, sizeof exp, "%" PRId64, time_now_ms() + p->ttl_ms);
  snprintf(ttl, sizeof ttl, "%" PRId64, p->ttl_ms);
  const char *args[2 + 2 * PRESENCE_BATCH];
  args[0] = exp;
  args[1] = ttl;
  for (size_t i = 0; i < n; i++) {
    args[2 + 2 * i] = clients[i];
    args[3 + 2 * i] = users[i];
  }
  const char *keys[] = {key};
  cache_reply *r = NULL;
  int rc = cache_eval(p->redis, p->join, 1, keys, (int)(2 + 2 * n), args, &r);
  cache_reply_free(r);
  return rc;
}

int presence_leave(presence *p, const char *channel, const char *client_id) {
  char key[KEY_MAX];
  if (key_for(channel, key) != ERR_OK) return ERR_INVAL;
  const char *keys[] = {key}, *args[] = {client_id};
  cache_reply *r = NULL;
  int rc = cache_eval(p->redis, p->leave, 1, keys, 1, args, &r);
  cache_reply_free(r);
  return rc;
}

static int copy_id(const cache_reply *r, char out[PRESENCE_ID_MAX + 1]) {
  const char *s = NULL;
  size_t len = 0;
  if (cache_reply_str(r, &s, &len) != ERR_OK || len > PRESENCE_ID_MAX)
    return ERR_PROTO;
  memcpy(out, s, len);
  out[len] = '\0';
  return ERR_OK;
}

static int parse_list(const cache_reply *r, presence_client **out, size_t *n) {
  size_t len = cache_reply_len(r);
  if (cache_reply_type(r) != CACHE_REPLY_ARRAY || len % 2 != 0 ||
      len > 2 * PRESENCE_MAX)
    return ERR_PROTO;
  presence_client *a = len == 0 ? NULL : calloc(len / 2, sizeof *a);
  if (len > 0 && a == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < len / 2; i++)
    if (copy_id(cache_reply_at(r, 2 * i), a[i].client_id) != ERR_OK ||
        copy_id(cache_reply_at(r, 2 * i + 1), a[i].user_id) != ERR_OK) {
      free(a);
      return ERR_PROTO;
    }
  *out = a;
  *n = len / 2;
  return ERR_OK;
}

int presence_list(presence *p, const char *channel, presence_client **out,
                  size_t *n) {
  *out = NULL;
  *n = 0;
  char key[KEY_MAX], now[24], max[24];
  if (key_for(channel, key) != ERR_OK) return ERR_INVAL;
  snprintf(now, sizeof now, "%" PRId64, time_now_ms());
  snprintf(max, sizeof max, "%d", PRESENCE_MAX);
  const char *keys[] = {key}, *args[] = {now, max};
  cache_reply *r = NULL;
  int rc = cache_eval(p->redis, p->list, 1, keys, 2, args, &r);
  if (rc == ERR_OK) rc = parse_list(r, out, n);
  cache_reply_free(r);
  return rc;
}
