/*
 * ratelimit.h - token buckets in Redis, taken atomically by one Lua
 * script.
 *
 * Two kinds of bucket (HTTP-API.md, "Rate limits"):
 *   RATELIMIT_CALLER  every call, per tenant and caller (the user id, or
 *                     the client address when anonymous);
 *   RATELIMIT_LOGIN   login attempts, per tenant and e-mail, tighter.
 * A bucket holds at most `burst` tokens and refills `per_min` tokens per
 * minute, continuously. Each call takes one; with none left the answer is
 * "limited" with the seconds until one is back (Retry-After).
 *
 * The script reads the bucket, refills it by the time elapsed (Redis's own
 * clock, TIME, so gateway replicas with skewed clocks agree), takes a
 * token, writes it back and sets the key to expire once the bucket would
 * be full again (an idle bucket costs nothing). It runs atomically in
 * Redis, so replicas sharing a bucket never over-grant.
 *
 * Keys: "rl:c:{<tenant>}:<caller>" and "rl:l:{<tenant>}:<hash>", where
 * <hash> is a BLAKE2b digest of the e-mail normalised as auth does it
 * (libs/base/email.h: trimmed, ASCII lower-cased; no addresses in Redis) and
 * the tenant is in braces (a Redis Cluster hash tag). Callers and tenants are
 * cut to 128 bytes.
 *
 * Batches (docs/adr/0020). One EVALSHA per call was an eighth of an
 * authenticated read's time at the gateway. So a call that finds no
 * token leased here asks the script for up to `batch` tokens at once (a
 * tenth of the bucket's burst at most, so small buckets - logins - stay
 * exact), uses one and leases the rest to the next calls of the same
 * bucket on this replica for lease_ms (tokenlease.h); a refusal is
 * remembered until Retry-After. Replicas together never grant more than
 * the shared bucket held; leased tokens are used at most lease_ms late,
 * and those left unused are lost.
 *
 * Redis unreachable, slow or answering garbage: by default the call is
 * ALLOWED (fail open: rate limits protect, they should not take the API
 * down with them) and failed_open is set so the caller counts it. With
 * fail_closed (GATEWAY_RATE_LIMIT_FAIL=closed) the call is REFUSED
 * instead, failed_closed is set and retry_after_s says when to try again
 * (the gateway answers 503 UNAVAILABLE with Retry-After): for deployments
 * where an unthrottled login endpoint is worse than an outage.
 */
#ifndef GATEWAY_RATELIMIT_H
#define GATEWAY_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"
#include "services/gateway/tokenlease.h"

enum ratelimit_kind { RATELIMIT_CALLER = 0, RATELIMIT_LOGIN = 1 };

typedef struct ratelimit_bucket {
  int64_t burst;   /* capacity, >= 1 */
  int64_t per_min; /* refill, tokens per minute, >= 1 */
} ratelimit_bucket;

typedef struct ratelimit_config {
  cache *redis;            /* borrowed; NULL: every call allowed */
  ratelimit_bucket caller; /* e.g. {120, 600} */
  ratelimit_bucket login;  /* e.g. {5, 10} */
  bool fail_closed;        /* Redis failure refuses instead of allowing */
  int64_t batch;           /* tokens asked of Redis at once; <= 1: exact */
  int64_t lease_ms;        /* leased tokens live this long; 0: default */
} ratelimit_config;

#define RATELIMIT_LEASE_MS 1000     /* default lease_ms */
#define RATELIMIT_LEASE_SLOTS 16384 /* buckets leased at once per replica */

/* Retry-After when refusing because Redis failed (fail_closed). */
#define RATELIMIT_FAIL_RETRY_S 5

typedef struct ratelimit ratelimit;

/* Creates a limiter. Errors: ERR_INVAL (a bucket below 1 or above 1e9),
 * ERR_NOMEM. *out is the caller's (ratelimit_free). */
int ratelimit_new(const ratelimit_config *cfg, ratelimit **out) WARN_UNUSED;
void ratelimit_free(ratelimit *r); /* NULL-safe */

typedef struct ratelimit_decision {
  bool allowed;
  bool failed_open;      /* Redis could not answer: allowed anyway */
  bool failed_closed;    /* Redis could not answer: refused (fail_closed) */
  int64_t retry_after_s; /* when limited: >= 1 */
  int64_t remaining;     /* tokens left after this call (when known) */
} ratelimit_decision;

/* Takes one token from the bucket of kind for (tenant, subject). subject
 * is the caller (user id or client address) for RATELIMIT_CALLER, the
 * e-mail as sent for RATELIMIT_LOGIN (normalised here, email.h). tenant NULL or
 * "" counts as "-". Always fills *d; returns ERR_OK, or ERR_INVAL for a NULL
 * subject (then *d allows). Thread-safe. */
int ratelimit_take(ratelimit *r, enum ratelimit_kind kind, const char *tenant,
                   const char *subject, ratelimit_decision *d) WARN_UNUSED;

#endif
