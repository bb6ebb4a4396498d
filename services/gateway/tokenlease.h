/*
 * tokenlease.h - tokens a gateway replica has taken from a shared
 * rate-limit bucket in Redis ahead of use, so that most calls are decided
 * here without a Redis round trip (docs/adr/0020).
 *
 * The replica asks Redis for a batch of tokens at once (ratelimit.c);
 * what is left after the call that asked is kept here as a lease, valid
 * for lease_ms, and the next calls of that bucket take from it. Leased
 * tokens were really taken from the shared bucket, so replicas together
 * never grant more than the bucket held; a lease only delays use by up
 * to lease_ms, and a lease that runs out unused is lost (fewer grants,
 * never more). A refusal is remembered too, until the moment Redis said
 * a token would be back: no call can get one sooner (the other replicas
 * only take tokens), so asking Redis again before then is wasted.
 *
 * The table is direct-mapped: a bucket's slot is a keyed hash (SipHash,
 * random key per process) of its key, and a bucket whose slot holds
 * another key evicts it - the evicted lease is lost (fewer grants) and
 * nothing else happens. So memory is fixed (slots x TOKENLEASE_KEY_MAX)
 * whatever the number of callers. Thread-safe (a lock per slot).
 */
#ifndef GATEWAY_TOKENLEASE_H
#define GATEWAY_TOKENLEASE_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define TOKENLEASE_KEY_MAX 300 /* longer keys are never leased */

typedef struct tokenlease tokenlease;

/* slots: 1..1<<20. Errors: ERR_INVAL, ERR_NOMEM, ERR_INTERNAL (libsodium).
 * *out is the caller's (tokenlease_free). */
int tokenlease_new(size_t slots, tokenlease **out) WARN_UNUSED;
void tokenlease_free(tokenlease *t); /* NULL-safe */

enum tokenlease_answer {
  TOKENLEASE_TAKEN,  /* one leased token taken: allow */
  TOKENLEASE_DENIED, /* refused until *retry_ms from now: limit */
  TOKENLEASE_ASK,    /* nothing known here: ask Redis */
};

/* Takes one token of key's lease at time now_ms (a monotonic clock). */
enum tokenlease_answer tokenlease_take(tokenlease *t, const char *key,
                                       int64_t now_ms, int64_t *retry_ms);

/* Redis granted tokens beyond the one the asking call used: keep them
 * until now_ms + lease_ms (added to what is left of a live lease, which
 * then lives that long too). tokens <= 0 does nothing. */
void tokenlease_grant(tokenlease *t, const char *key, int64_t tokens,
                      int64_t now_ms, int64_t lease_ms);

/* Redis refused: every call of key is refused until now_ms + retry_ms. */
void tokenlease_deny(tokenlease *t, const char *key, int64_t now_ms,
                     int64_t retry_ms);

#endif
