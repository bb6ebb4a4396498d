/*
 * revoker.h - the revocation path: Redis records + bus events + the
 * service's own verifier.
 *
 * Revoking means three things, in this order:
 *   1. Redis: SET revoked:jti:<jti> <unix s> or revoked:user:<user_id>
 *      <unix s> (through libs/authn/revlog.h, which also moves the change
 *      counter) with a TTL of the access-token lifetime (after that every
 *      token the record could refuse has expired anyway). Every verifier
 *      (libs/authn) reads these keys when it first sees a token and again
 *      every recheck period, and a process that starts later finds them.
 *   2. The service's own libs/authn verifier learns at once.
 *   3. An "auth.revoked" event (payload auth.v1.Revoked) is published, so
 *      verifiers subscribed to the bus drop the token at once instead of at
 *      their next recheck.
 * Redis is the durable part: its failure is the caller's error
 * (ERR_UNAVAILABLE); the bus is best effort (nng pub/sub may drop).
 *
 * A user revocation refuses tokens whose iat (whole seconds) is < the
 * recorded time, which is the revocation instant rounded UP to the second:
 * every token issued before is refused, and auth issues later tokens with
 * iat >= that second (handlers.c).
 */
#ifndef AUTH_REVOKER_H
#define AUTH_REVOKER_H

#include <stddef.h>
#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/cache/cache.h"

/* Publishes one event: topic, type, tenant and payload (serialised
 * auth.v1.Revoked). Returns ERR_OK or an error (counted, not fatal). */
typedef int (*revoker_publish_fn)(void *arg, const char *topic,
                                  const char *type, const char *tenant_id,
                                  const void *payload, size_t len);

typedef struct revoker revoker;

/* redis, local and publish may be NULL (that step is skipped); all are
 * borrowed. ttl_ms > 0: the record lifetime (the access-token lifetime
 * plus the verifiers' leeway). ERR_INVAL, ERR_NOMEM. */
int revoker_new(cache *redis, int64_t ttl_ms, authn *local,
                revoker_publish_fn publish, void *publish_arg,
                revoker **out) WARN_UNUSED;
void revoker_free(revoker *r);

/* Revokes one access token. ERR_UNAVAILABLE when Redis did not take it
 * (the local verifier and the bus were still told), ERR_INVAL. */
int revoker_jti(revoker *r, const char *tenant_id, const char *jti) WARN_UNUSED;

/* Revokes every access token of user_id issued before at_ms (Unix ms;
 * rounded up to the second). Errors as revoker_jti. */
int revoker_user(revoker *r, const char *tenant_id, const char *user_id,
                 int64_t at_ms) WARN_UNUSED;

/* The value stored for a revocation at at_ms: ceil(at_ms / 1000). */
int64_t revoker_user_cutoff_s(int64_t at_ms);

#endif
