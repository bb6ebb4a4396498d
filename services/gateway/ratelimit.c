/*
 * ratelimit.c - see ratelimit.h. The state of a bucket is a hash of two
 * fields, tokens (a real number) and ts (Redis time in microseconds of
 * the last refill), so refill is exact at any call rate.
 */
#include "services/gateway/ratelimit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/email.h"
#include "libs/base/strutil.h"

/* KEYS[1] bucket. ARGV: burst, per_min. Returns {allowed, retry_ms,
 * remaining}. Redis 7 replicates script effects, so TIME is allowed. */
static const char kScript[] =
    "local burst = tonumber(ARGV[1])\n"
    "local per_min = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(b[1])\n"
    "local ts = tonumber(b[2])\n"
    "if tokens == nil or ts == nil then tokens = burst; ts = now end\n"
    "if now > ts then\n"
    "  tokens = math.min(burst, tokens + (now - ts) * per_min / 60000000)\n"
    "  ts = now\n"
    "end\n"
    "local allowed = 0\n"
    "local retry_ms = 0\n"
    "if tokens >= 1 then\n"
    "  tokens = tokens - 1\n"
    "  allowed = 1\n"
    "else\n"
    "  retry_ms = math.ceil((1 - tokens) * 60000 / per_min)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', "
    "tostring(ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 60000 / "
    "per_min) + 1000)\n"
    "return {allowed, retry_ms, math.floor(tokens)}\n";

struct ratelimit {
  cache *redis;
  cache_script *script;
  ratelimit_bucket b[2];
  bool fail_closed;
};

static bool bucket_ok(const ratelimit_bucket *b) {
  return b->burst >= 1 && b->burst <= 1000000000 && b->per_min >= 1 &&
         b->per_min <= 1000000000;
}

int ratelimit_new(const ratelimit_config *cfg, ratelimit **out) {
  *out = NULL;
  if (!bucket_ok(&cfg->caller) || !bucket_ok(&cfg->login)) return ERR_INVAL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  ratelimit *r = calloc(1, sizeof *r);
  if (r == NULL) return ERR_NOMEM;
  r->redis = cfg->redis;
  r->b[RATELIMIT_CALLER] = cfg->caller;
  r->b[RATELIMIT_LOGIN] = cfg->login;
  r->fail_closed = cfg->fail_closed;
  int rc = cache_script_new(kScript, &r->script);
  if (rc != ERR_OK) {
    free(r);
    return rc;
  }
  *out = r;
  return ERR_OK;
}

void ratelimit_free(ratelimit *r) {
  if (r == NULL) return;
  cache_script_free(r->script);
  free(r);
}

/* Copies s into out keeping it printable and short (keys stay bounded and
 * readable in redis-cli). */
static void key_part(char *out, size_t cap, const char *s) {
  if (s == NULL || s[0] == '\0') s = "-";
  size_t k = 0;
  for (size_t i = 0; s[i] != '\0' && k + 1 < cap && i < 128; i++) {
    unsigned char c = (unsigned char)s[i];
    out[k++] = (c > 0x20 && c < 0x7f && c != '{' && c != '}') ? (char)c : '_';
  }
  out[k] = '\0';
}

/* The bucket of an e-mail is the hash of its normalised text, exactly
 * auth's (libs/base/email.h), so " Owner@X" and "owner@x" are one bucket.
 * Text that does not normalise (blank, too long) cannot log in anyway:
 * all of it shares one bucket per tenant rather than getting one each. */
static void email_hash(const char *email, char out[33]) {
  char norm[EMAIL_MAX + 1];
  if (email_normalize(email, norm, sizeof norm) != ERR_OK)
    str_copy(norm, "\x01invalid", sizeof norm);
  unsigned char h[16];
  crypto_generichash(h, sizeof h, (const unsigned char *)norm, strlen(norm),
                     NULL, 0);
  sodium_bin2hex(out, 33, h, sizeof h);
}

int ratelimit_take(ratelimit *r, enum ratelimit_kind kind, const char *tenant,
                   const char *subject, ratelimit_decision *d) {
  d->allowed = true;
  d->failed_open = false;
  d->failed_closed = false;
  d->retry_after_s = 0;
  d->remaining = -1;
  if (subject == NULL || (kind != RATELIMIT_CALLER && kind != RATELIMIT_LOGIN))
    return ERR_INVAL;
  if (r == NULL || r->redis == NULL) return ERR_OK;
  char t[130], s[130], key[300];
  key_part(t, sizeof t, tenant);
  if (kind == RATELIMIT_LOGIN) {
    email_hash(subject, s);
    snprintf(key, sizeof key, "rl:l:{%s}:%s", t, s);
  } else {
    key_part(s, sizeof s, subject);
    snprintf(key, sizeof key, "rl:c:{%s}:%s", t, s);
  }
  char burst[24], per_min[24];
  snprintf(burst, sizeof burst, "%lld", (long long)r->b[kind].burst);
  snprintf(per_min, sizeof per_min, "%lld", (long long)r->b[kind].per_min);
  const char *keys[] = {key};
  const char *args[] = {burst, per_min};
  cache_reply *rep = NULL;
  int rc = cache_eval(r->redis, r->script, 1, keys, 2, args, &rep);
  int64_t allowed, retry_ms, remaining;
  if (rc != ERR_OK || cache_reply_len(rep) != 3 ||
      cache_reply_int_at(rep, 0, &allowed) != ERR_OK ||
      cache_reply_int_at(rep, 1, &retry_ms) != ERR_OK ||
      cache_reply_int_at(rep, 2, &remaining) != ERR_OK) {
    cache_reply_free(rep);
    d->allowed = !r->fail_closed;
    d->failed_open = !r->fail_closed;
    d->failed_closed = r->fail_closed;
    if (r->fail_closed) d->retry_after_s = RATELIMIT_FAIL_RETRY_S;
    return ERR_OK;
  }
  cache_reply_free(rep);
  d->allowed = allowed == 1;
  d->remaining = remaining;
  if (!d->allowed) {
    int64_t s_after = (retry_ms + 999) / 1000;
    d->retry_after_s = s_after < 1 ? 1 : s_after;
  }
  return ERR_OK;
}
