/*
 * revlog.h - writing the revocation and tenant-status records every
 * verifier reads (authn.h: revoked:jti:*, revoked:user:*,
 * tenant:status:*), with a counter that moves whenever one of them
 * changes.
 *
 * A verifier that keeps many tokens alive (realtime's recheck) cannot
 * afford to re-read every token's records in Redis several times a
 * second. Instead it reads one key, AUTHN_REVOCATIONS_KEY, and re-reads
 * the records only when that moved: every writer goes through
 * authn_record_state, one Lua script that sets the record and, when its
 * value changed, INCRs the counter in the same step, so the counter
 * never moves before the record it announces exists, nor stays put after
 * a change (auth's revoker, tenants' status writes).
 *
 * Threads: thread-safe (the script object is made once).
 */
#ifndef LIBS_AUTHN_REVLOG_H
#define LIBS_AUTHN_REVLOG_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

#define AUTHN_REVOCATIONS_KEY "authn:revocations"

/* SET key value (PX ttl_ms when ttl_ms > 0, else no expiry) and, when
 * the key's value was another (or none), INCR AUTHN_REVOCATIONS_KEY, as
 * one script. Errors: ERR_INVAL (NULL or empty key/value, ttl_ms < 0),
 * ERR_NOMEM, and cache_eval's (ERR_UNAVAILABLE when Redis cannot). */
int authn_record_state(cache *redis, const char *key, const char *value,
                       int64_t ttl_ms) WARN_UNUSED;

/* The counter now (0 when it was never written). Errors: cache_get's
 * (ERR_UNAVAILABLE, ERR_TIMEOUT), ERR_PROTO for a value that is not a
 * number. */
int authn_revocations_read(cache *redis, int64_t *out) WARN_UNUSED;

#endif
