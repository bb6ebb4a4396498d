/*
 * loginlock.c - the per-account login slowdown (see loginlock.h).
 *
 * Design. All of the decision is one Lua script, so the read of the lock,
 * the charge and the new lock are atomic in Redis whatever the number of
 * auth replicas: two attempts can never both see "n = free - 1". The C
 * side only builds the keys, runs the script and applies the fail mode.
 * The lock length is computed in the script with the exponent capped (2^40
 * ms is already far past any sane maximum), so no overflow in Lua's
 * doubles either.
 */
#include "services/auth/loginlock.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"

#define UNAVAILABLE_LOG_EVERY_MS 10000

/* KEYS[1] attempt counter, KEYS[2] lock. ARGV: free, window_ms, base_ms,
 * max_ms. Returns the lock's remaining ms when locked (attempt refused,
 * not charged), else 0 (attempt charged and allowed). */
static const char kScript[] =
    "local left = redis.call('PTTL', KEYS[2])\n"
    "if left > 0 then return left end\n"
    "local n = redis.call('INCR', KEYS[1])\n"
    "local free = tonumber(ARGV[1])\n"
    "local lock = 0\n"
    "if n >= free then\n"
    "  local e = n - free\n"
    "  if e > 40 then e = 40 end\n"
    "  lock = math.floor(math.min(tonumber(ARGV[3]) * 2 ^ e, "
    "tonumber(ARGV[4])))\n"
    "  redis.call('SET', KEYS[2], '1', 'PX', lock)\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], lock + tonumber(ARGV[2]))\n"
    "return 0\n";

struct loginlock {
  cache *redis;
  cache_script *script;
  loginlock_config cfg;
  char args[4][24];
  _Atomic int64_t last_warn_ms;
};

int loginlock_new(cache *redis, const loginlock_config *cfg, loginlock **out) {
  *out = NULL;
  if (cfg == NULL || cfg->free_failures < 1 || cfg->window_ms <= 0 ||
      cfg->base_ms <= 0 || cfg->max_ms < cfg->base_ms)
    return ERR_INVAL;
  loginlock *l = calloc(1, sizeof *l);
  if (l == NULL) return ERR_NOMEM;
  int rc = cache_script_new(kScript, &l->script);
  if (rc != ERR_OK) {
    free(l);
    return rc;
  }
  l->redis = redis;
  l->cfg = *cfg;
  snprintf(l->args[0], sizeof l->args[0], "%d", cfg->free_failures);
  snprintf(l->args[1], sizeof l->args[1], "%" PRId64, cfg->window_ms);
  snprintf(l->args[2], sizeof l->args[2], "%" PRId64, cfg->base_ms);
  snprintf(l->args[3], sizeof l->args[3], "%" PRId64, cfg->max_ms);
  atomic_init(&l->last_warn_ms, INT64_MIN / 2);
  *out = l;
  return ERR_OK;
}

void loginlock_free(loginlock *l) {
  if (l == NULL) return;
  cache_script_free(l->script);
  free(l);
}

void loginlock_key(const char *tenant, const char *email,
                   char out[LOGINLOCK_KEY_MAX]) {
  /* A hash, not the address: Redis (dumps, MONITOR, slowlog) never holds
   * users' e-mails. 128 bits are plenty to keep accounts apart. */
  uint8_t h[16];
  crypto_generichash(h, sizeof h, (const unsigned char *)email, strlen(email),
                     NULL, 0);
  char hex[2 * sizeof h + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  snprintf(out, LOGINLOCK_KEY_MAX, "auth:login:{%s:%s}", tenant, hex);
}

static metrics_child *unavailable_metric(const char *mode) {
  const char *labels[] = {"mode"};
  metrics_family *f = metrics_counter(
      "auth_login_lock_unavailable_total",
      "Login attempts whose per-account counter could not be read (Redis "
      "down), by fail mode",
      1, labels);
  const char *v[] = {mode};
  return metrics_child_get(f, v);
}

/* Redis could not be asked: the configured fail mode decides. */
static enum loginlock_verdict unavailable(loginlock *l, const char *why) {
  const char *mode = l->cfg.fail_closed ? "closed" : "open";
  metrics_inc(unavailable_metric(mode));
  int64_t now = time_mono_ms();
  int64_t last = atomic_load(&l->last_warn_ms);
  /* At most one line per period: an outage must not flood the log. */
  if (now - last >= UNAVAILABLE_LOG_EVERY_MS &&
      atomic_compare_exchange_strong(&l->last_warn_ms, &last, now))
    log_warn("login failure counter unavailable", "fail_mode", mode, "error",
             why);
  return l->cfg.fail_closed ? LOGINLOCK_UNAVAILABLE : LOGINLOCK_ALLOW;
}

enum loginlock_verdict loginlock_attempt(loginlock *l, const char *tenant,
                                         const char *email,
                                         int64_t *retry_after_ms) {
  *retry_after_ms = 0;
  if (l->redis == NULL) return unavailable(l, "no Redis configured");
  char base[LOGINLOCK_KEY_MAX], kn[LOGINLOCK_KEY_MAX + 8],
      kl[LOGINLOCK_KEY_MAX + 8];
  loginlock_key(tenant, email, base);
  snprintf(kn, sizeof kn, "%s:n", base);
  snprintf(kl, sizeof kl, "%s:lock", base);
  const char *keys[] = {kn, kl};
  const char *args[] = {l->args[0], l->args[1], l->args[2], l->args[3]};
  cache_reply *r = NULL;
  int rc = cache_eval(l->redis, l->script, 2, keys, 4, args, &r);
  int64_t left = 0;
  if (rc == ERR_OK) rc = cache_reply_int(r, &left);
  cache_reply_free(r);
  if (rc != ERR_OK) return unavailable(l, cache_last_error()->message);
  if (left <= 0) return LOGINLOCK_ALLOW;
  *retry_after_ms = left;
  return LOGINLOCK_LOCKED;
}

void loginlock_reset(loginlock *l, const char *tenant, const char *email) {
  if (l->redis == NULL) return;
  char base[LOGINLOCK_KEY_MAX], kn[LOGINLOCK_KEY_MAX + 8],
      kl[LOGINLOCK_KEY_MAX + 8];
  loginlock_key(tenant, email, base);
  snprintf(kn, sizeof kn, "%s:n", base);
  snprintf(kl, sizeof kl, "%s:lock", base);
  const char *argv[] = {"DEL", kn, kl};
  if (cache_command(l->redis, true, 3, argv, NULL, NULL) != ERR_OK)
    log_warn("login failure counter not reset", "error",
             cache_last_error()->message);
}
