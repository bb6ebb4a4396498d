/*
 * idem.h - idempotency keys of the calls that create users (Register and
 * CreateUser), with the semantics of HTTP-API.md's Idempotency-Key and of
 * services/orders' CreateOrder: the same key with the same request
 * answers as the first call did (nothing created twice), the same key
 * with a different request is INVALID_ARGUMENT, and while the first call
 * is still running a second one is ABORTED.
 *
 * Design. The user row itself remembers the call that made it:
 * (creation_principal, creation_key, creation_hash) in auth.users, unique
 * per (tenant, principal, key), written in the INSERT's own transaction,
 * so the database alone guarantees "nothing created twice". Keys are
 * scoped by principal - "internal" for token-less CreateUser, "user:<id>"
 * for a member's CreateUser, "register" for anonymous Register - so one
 * caller's key never meets another's.
 *
 * The request hash is BLAKE2b-256 over a domain tag, the method and the
 * serialised request, *keyed* with a secret derived from the active
 * signing key (auth_keys_derive). The request holds the password: it
 * must be part of the hash (a replay with another password must not get
 * the first user - or, with issue_tokens, a session - back), and a plain
 * hash of it next to the e-mail would be a fast offline guessing target
 * for anyone holding a database copy; the keyed hash is useless without
 * the signing key. (A key rotation changes it: a retry across a rotation
 * is answered INVALID_ARGUMENT. Rows made before this hash existed have
 * none and replay as before.)
 *
 * "Still running" is a Redis marker, SET NX with the first call's
 * remaining deadline (plus a second) as TTL, taken only after the
 * database said the key is new, and deleted when the call ends: the
 * password hash (tens of ms of Argon2) runs outside any transaction, so
 * no database lock could cover it without holding a connection through
 * it. Without Redis (or with Redis down) the marker is skipped: a
 * concurrent twin then hashes too, loses on the unique key and answers
 * as a replay - nothing is created twice either way.
 *
 * The marker holds the call's request id. A retry of the same call (the
 * RPC client's next attempt: same request id, attempt > 1) whose earlier
 * attempt died with its replica finds its own marker and takes it over
 * instead of waiting out the TTL, which would outlast the retry's own
 * deadline (docs/adr/0013-failover-and-replicas.md); if that earlier
 * attempt is in fact still running, the unique key above still makes
 * the later one answer as a replay. A request id is not a secret and a
 * client may choose it, but only the RPC client sets attempt > 1, and
 * the database is the guarantee either way.
 */
#ifndef AUTH_IDEM_H
#define AUTH_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

#define AUTH_IDEM_HASH_LEN 32
#define AUTH_IDEM_CONTEXT "auth.idem.v1"

/* out = BLAKE2b-256 keyed with key over (tag NUL method NUL payload). */
void auth_idem_hash(const uint8_t key[32], const char *method,
                    const void *payload, size_t len,
                    uint8_t out[AUTH_IDEM_HASH_LEN]);

/* Takes the "still running" marker of (tenant, principal, key) for ttl_ms
 * on behalf of the call with request id holder ("" for none) and attempt
 * number attempt (see above). *claimed false: another call holds it.
 * Redis NULL or failing: *claimed true (see above). */
void auth_idem_claim(cache *redis, const char *tenant, const char *principal,
                     const char *key, const char *holder, uint32_t attempt,
                     int64_t ttl_ms, bool *claimed);

/* Deletes the marker (after auth_idem_claim claimed it). Best effort. */
void auth_idem_release(cache *redis, const char *tenant, const char *principal,
                       const char *key);

#endif
