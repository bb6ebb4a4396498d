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
#include "libs/base/timeutil.h"

/* KEYS[1] bucket. ARGV: burst, per_min, want. Takes up to want whole
 * tokens (at least one, else none) and returns {granted, retry_ms,
 * remaining}; retry_ms (when none) is when one is back. Redis 7
 * replicates script effects, so TIME is allowed. */
static const char kScript[] =
    "local burst = tonumber(ARGV[1])\n"
    "local per_min = tonumber(ARGV[2])\n"
    "local want = tonumber(ARGV[3])\n"
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
    "local granted = 0\n"
    "local retry_ms = 0\n"
    "if tokens >= 1 then\n"
    "  granted = math.min(want, math.floor(tokens))\n"
    "  tokens = tokens - granted\n"
    "else\n"
    "  retry_ms = math.ceil((1 - tokens) * 60000 / per_min)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', "
    "tostring(ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 60000 / "
    "per_min) + 1000)\n"
    "return {granted, retry_ms, math.floor(tokens)}\n";

struct ratelimit {
  cache *redis;
  cache_script *script;
  ratelimit_bucket b[2];
  int64_t batch[2]; /* tokens asked of Redis at once, per kind */
  int64_t lease_ms;
  tokenlease *leases; /* NULL: every call asks Redis */
  bool fail_closed;
};

/* A tenth of the burst, at most the configured batch: a small bucket
 * (logins: 5) is decided exactly, call by call, and a replica never holds
 * more than a tenth of a caller's burst unused. */
static int64_t batch_for(const ratelimit_bucket *b, int64_t batch) {
  int64_t tenth = b->burst / 10;
  if (batch > tenth) batch = tenth;
  return batch < 1 ? 1 : batch;
}

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
  int64_t batch = cfg->batch < 1 ? 1 : cfg->batch;
  r->batch[RATELIMIT_CALLER] = batch_for(&cfg->caller, batch);
  r->batch[RATELIMIT_LOGIN] = batch_for(&cfg->login, batch);
  r->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : RATELIMIT_LEASE_MS;
  int rc = cache_script_new(kScript, &r->script);
  if (rc == ERR_OK &&
      (r->batch[RATELIMIT_CALLER] > 1 || r->batch[RATELIMIT_LOGIN] > 1))
    rc = tokenlease_new(RATELIMIT_LEASE_SLOTS, &r->leases);
  if (rc != ERR_OK) {
    cache_script_free(r->script);
    free(r);
    return rc;
  }
  *out = r;
  return ERR_OK;
}

void ratelimit_free(ratelimit *r) {
  if (r == NULL) return;
  cache_script_free(r->script);
  tokenlease_free(r->leases);
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

/* One EVALSHA: up to r->batch[kind] tokens of key's bucket. */
static int ask_redis(ratelimit *r, enum ratelimit_kind kind, const char *key,
                     int64_t *granted, int64_t *retry_ms, int64_t *remaining) {
  char burst[24], per_min[24], want[24];
  snprintf(burst, sizeof burst, "%lld", (long long)r->b[kind].burst);
  snprintf(per_min, sizeof per_min, "%lld", (long long)r->b[kind].per_min);
  snprintf(want, sizeof want, "%lld", (long long)r->batch[kind]);
  const char *keys[] = {key};
  const char *args[] = {burst, per_min, want};
  cache_reply *rep = NULL;
  int rc = cache_eval(r->redis, r->script, 1, keys, 3, args, &rep);
  if (rc == ERR_OK && (cache_reply_len(rep) != 3 ||
                       cache_reply_int_at(rep, 0, granted) != ERR_OK ||
                       cache_reply_int_at(rep, 1, retry_ms) != ERR_OK ||
                       cache_reply_int_at(rep, 2, remaining) != ERR_OK))
    rc = ERR_PROTO;
  cache_reply_free(rep);
  return rc;
}

static void limited(ratelimit_decision *d, int64_t retry_ms) {
  d->allowed = false;
  int64_t s_after = (retry_ms + 999) / 1000;
  d->retry_after_s = s_after < 1 ? 1 : s_after;
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
  int64_t now = time_mono_ms(), retry_ms = 0;
  tokenlease *tl = r->batch[kind] > 1 ? r->leases : NULL;
  switch (tl ? tokenlease_take(tl, key, now, &retry_ms) : TOKENLEASE_ASK) {
  case TOKENLEASE_TAKEN:
    return ERR_OK;
  case TOKENLEASE_DENIED:
    limited(d, retry_ms);
    return ERR_OK;
  case TOKENLEASE_ASK:
    break;
  }
  int64_t granted = 0, remaining = 0;
  if (ask_redis(r, kind, key, &granted, &retry_ms, &remaining) != ERR_OK) {
    d->allowed = !r->fail_closed;
    d->failed_open = !r->fail_closed;
    d->failed_closed = r->fail_closed;
    if (r->fail_closed) d->retry_after_s = RATELIMIT_FAIL_RETRY_S;
    return ERR_OK;
  }
  d->remaining = remaining;
  if (granted < 1) {
    if (tl) tokenlease_deny(tl, key, now, retry_ms);
    limited(d, retry_ms);
    return ERR_OK;
  }
  if (tl) tokenlease_grant(tl, key, granted - 1, now, r->lease_ms);
  return ERR_OK;
}
