/*
 * pwpool.h - password hashing (Argon2id, crypto_pwhash_str) on a small
 * dedicated thread pool with an admission limit.
 *
 * Why a pool: one Argon2id hash at the INTERACTIVE limits costs tens of
 * milliseconds of CPU and 64 MiB of memory. Run on the RPC worker threads,
 * a burst of logins would occupy every worker and stall every other call
 * (Keys, Verify, Me, ListMembers) behind them. So the RPC handler submits
 * the hash to this pool and waits for it; the pool has `threads` hashing
 * threads (bounding CPU and memory: threads x memlimit) and accepts at most
 * `max_pending` jobs queued or running. When it is full, pwpool_hash and
 * pwpool_verify fail at once with ERR_TOOBIG (the service answers
 * RESOURCE_EXHAUSTED) instead of queueing, so at most max_pending RPC
 * workers ever wait for password work: with max_pending below the number
 * of RPC workers, other calls always find a free worker.
 *
 * A caller whose deadline passes stops waiting (ERR_TIMEOUT); a job that
 * has not started by then is skipped, one already running finishes and is
 * discarded, and it keeps its admission slot until then, so abandoned
 * jobs cannot overload the pool either.
 *
 * Passwords are copied into the job and wiped (sodium_memzero) as soon as
 * the job is done; nothing here logs.
 */
#ifndef AUTH_PWPOOL_H
#define AUTH_PWPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "libs/base/err.h"

#define PWPOOL_HASH_MAX crypto_pwhash_STRBYTES /* buffer incl. NUL */
#define PWPOOL_PASSWORD_MAX 1024               /* bytes, a hard cap */

typedef struct pwpool pwpool;

typedef struct pwpool_config {
  int threads;                 /* hashing threads, 1..64 */
  int max_pending;             /* jobs queued + running at most, >= threads */
  unsigned long long opslimit; /* crypto_pwhash opslimit (>= MIN) */
  size_t memlimit;             /* bytes (>= crypto_pwhash_MEMLIMIT_MIN) */
} pwpool_config;

/* Starts the threads and computes the dummy hash used to verify logins
 * of unknown users (same parameters, so the same cost). Errors: ERR_INVAL
 * (limits out of range), ERR_NOMEM, ERR_INTERNAL (thread or hashing
 * failure). *out is the caller's (pwpool_free). */
int pwpool_new(const pwpool_config *cfg, pwpool **out) WARN_UNUSED;

/* Stops the threads (jobs still queued are failed with ERR_CLOSED) and
 * frees p. No pwpool_hash/verify may be running. NULL-safe. */
void pwpool_free(pwpool *p);

/* Hashes password[0..len) into out (NUL-terminated crypto_pwhash_str
 * string, "$argon2id$..."). Waits until done or deadline_mono_ms
 * (time_mono_ms clock). Errors: ERR_TOOBIG (pool full, or len over
 * PWPOOL_PASSWORD_MAX), ERR_TIMEOUT, ERR_NOMEM, ERR_CLOSED,
 * ERR_INTERNAL (Argon2 failed: out of memory). */
int pwpool_hash(pwpool *p, const char *password, size_t len,
                int64_t deadline_mono_ms,
                char out[PWPOOL_HASH_MAX]) WARN_UNUSED;

/* Verifies password against hash (a crypto_pwhash_str string), or, when
 * hash is NULL, against the pool's dummy hash - which always answers
 * *ok = false but costs the same as a real verification. Errors as
 * pwpool_hash; *ok is false on any error. */
int pwpool_verify(pwpool *p, const char *hash, const char *password, size_t len,
                  int64_t deadline_mono_ms, bool *ok) WARN_UNUSED;

typedef struct pwpool_stats {
  int pending;        /* admitted jobs not finished */
  uint64_t done;      /* jobs run */
  uint64_t rejected;  /* refused because full */
  uint64_t abandoned; /* callers that stopped waiting */
} pwpool_stats;

void pwpool_get_stats(pwpool *p, pwpool_stats *out);

#endif
