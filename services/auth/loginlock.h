/*
 * loginlock.h - the per-account login slowdown (HTTP-API.md, "Operations":
 * repeated failures on one account slow that account down whatever
 * address they come from).
 *
 * Design. One counter per (tenant, normalised e-mail) in Redis, the same
 * whether the account exists or not, so neither the answer nor its timing
 * says which. Every login attempt is charged *before* the password is
 * checked, in one Lua script that also reads the lock: attempts 1 ..
 * free-1 pass; attempt n >= free passes but sets a lock of
 * base * 2^(n - free) ms (capped at max); an attempt while the lock lives
 * is refused with the lock's remaining time and is not charged (so it
 * does not lengthen the lock) - the caller answers RESOURCE_EXHAUSTED
 * with retry-after and checks no password (no oracle, no CPU). A correct
 * login deletes the counter and the lock (loginlock_reset). Charging up
 * front rather than counting failures afterwards matters under
 * concurrency: a burst of parallel guesses cannot all pass the check
 * before the first failure is counted. The counter expires window ms
 * after the last charged attempt (plus the lock it set): a quiet account
 * forgets its failures.
 *
 * Keys: "auth:login:{<tenant>:<hex BLAKE2b-128 of the e-mail>}:n" and
 * ":lock" - the e-mail itself never reaches Redis, and the braces keep
 * both keys in one Redis Cluster slot for the script.
 *
 * Redis unreachable (or not configured): fail_closed false ("open", the
 * default) lets the attempt through, with a warning logged at most every
 * 10 s and the counter auth_login_lock_unavailable_total; fail_closed
 * true refuses it (LOGINLOCK_UNAVAILABLE: the caller answers UNAVAILABLE).
 *
 * Thread-safe: the object is immutable after loginlock_new; cache is.
 */
#ifndef AUTH_LOGINLOCK_H
#define AUTH_LOGINLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

typedef struct loginlock loginlock;

typedef struct loginlock_config {
  int free_failures; /* AUTH_LOGIN_FAILURES_FREE, >= 1 */
  int64_t window_ms; /* AUTH_LOGIN_FAILURE_WINDOW, > 0 */
  int64_t base_ms;   /* AUTH_LOGIN_LOCK_BASE_MS, > 0 */
  int64_t max_ms;    /* AUTH_LOGIN_LOCK_MAX_MS, >= base_ms */
  bool fail_closed;  /* AUTH_LOGIN_LOCK_FAIL=closed */
} loginlock_config;

enum loginlock_verdict {
  LOGINLOCK_ALLOW = 0,   /* check the password */
  LOGINLOCK_LOCKED,      /* refuse: *retry_after_ms set (> 0) */
  LOGINLOCK_UNAVAILABLE, /* Redis down and fail_closed: refuse */
};

/* redis is borrowed and may be NULL (no Redis: every attempt is treated
 * as Redis being down). ERR_INVAL for a bad config, ERR_NOMEM. */
int loginlock_new(cache *redis, const loginlock_config *cfg,
                  loginlock **out) WARN_UNUSED;
void loginlock_free(loginlock *l); /* NULL-safe */

/* Charges one attempt on (tenant, email) and says whether it may go on.
 * email must be the normalised address (validate_email). */
enum loginlock_verdict loginlock_attempt(loginlock *l, const char *tenant,
                                         const char *email,
                                         int64_t *retry_after_ms);

/* Forgets the account's failures after a correct password. Best effort:
 * a Redis failure is logged, never the caller's error. */
void loginlock_reset(loginlock *l, const char *tenant, const char *email);

/* The Redis key prefix for (tenant, email) into out (without ":n" /
 * ":lock"). Exposed for tests. */
#define LOGINLOCK_KEY_MAX 160
void loginlock_key(const char *tenant, const char *email,
                   char out[LOGINLOCK_KEY_MAX]);

#endif
