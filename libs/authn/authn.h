/*
 * authn.h - access-token verification for every service: offline PASETO
 * v4.public verification against auth's public keys, time claims with a
 * leeway, the revocation set, the tenant status, and a verified-token cache
 * so the Ed25519 cost is paid once per token.
 *
 *   authn_config c = AUTHN_CONFIG_INIT;
 *   c.keys_client = auth_client;   // fetches auth.v1.Auth/Keys
 *   c.redis = redis;               // revoked:* and tenant:status:* keys
 *   authn *a;
 *   if (authn_new(&c, &a) != ERR_OK) ...
 *   paseto_claims cl;
 *   enum authn_result why;
 *   int rc = authn_verify(a, call->token, strlen(call->token), &cl, &why);
 *   if (rc == ERR_INVAL) reply authn_result_code(why), authn_result_str(why)
 *   if (rc == ERR_UNAVAILABLE) reply UNAVAILABLE
 *   ... cl.sub, cl.tid, cl.role ...
 *
 * Keys. A key set of at most AUTHN_MAX_KEYS public keys, each named by its
 * PASERK k4.pid, chosen by the "kid" of the token's footer (read before
 * verification for that purpose only). The set is given directly
 * (authn_set_keys: the auth service verifies with its own keys) and/or
 * fetched from auth's Keys RPC through keys_client: at authn_new (best
 * effort), every keys_refresh_ms in a background thread, and at once when
 * a token names an unknown kid - at most once per unknown_kid_interval_ms,
 * so a flood of tokens with made-up kids cannot turn into a flood of RPCs.
 * A fetched key's kid is recomputed from the key, never trusted.
 *
 * Checks, in order: shape and bounds (paseto.h), kid, signature, claims
 * JSON (claims.h), iss when configured, sub/tid/jti/exp present, time
 * claims with leeway_ms, then the revocation and tenant state:
 *   revoked:jti:<jti>          present          -> AUTHN_REVOKED
 *   revoked:user:<sub>         unix seconds R   -> AUTHN_REVOKED when iat < R
 *   tenant:status:<tid>        "suspended"      -> AUTHN_TENANT_SUSPENDED
 * read from Redis with one MGET and remembered for recheck_ms (default
 * 500 ms, so a revocation is seen within a second even if every bus event
 * were lost), and applied at once when the service feeds bus events in
 * (authn_handle_event, or authn_revoke_* / authn_tenant_changed).
 * When Redis cannot answer, tokens are accepted (fail open: Redis holds
 * what may be lost, docs/ARCHITECTURE.md) unless fail_closed is set, and the
 * next recheck is tried recheck_ms later, not on every call. Whoever
 * builds the options reads AUTHN_REVOCATION_FAIL=open|closed with
 * authn_fail_mode_parse (libs/svc for services, the gateway for itself).
 *
 * Cache. Verified tokens are kept in a bounded set-associative table keyed
 * by BLAKE2b-256 of the token (the token itself is not stored), LRU within
 * each 4-entry set, until they expire. A hit costs a hash and a time check
 * instead of an Ed25519 verification. Tokens that fail the signature are
 * never cached (an attacker cannot fill the cache with garbage). Entries
 * verified with a key that left the key set are verified again.
 *
 * Threads: every function is thread-safe. authn_free must not race others.
 */
#ifndef LIBS_AUTHN_AUTHN_H
#define LIBS_AUTHN_AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/bus/bus.h"
#include "libs/cache/cache.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"

#define AUTHN_MAX_KEYS 16
#define AUTHN_KEYS_METHOD "auth.v1.Auth/Keys"
#define AUTHN_TOPIC_REVOKED "auth.revoked"
#define AUTHN_TOPIC_TENANTS "tenants.changed"

typedef struct authn authn;

/* One public key of the set. */
typedef struct authn_key {
  paseto_public_key pk;
  bool active; /* the signing key (informational: all keys verify) */
} authn_key;

/* Why a token was refused (or AUTHN_OK). */
enum authn_result {
  AUTHN_OK = 0,
  AUTHN_MISSING,       /* empty token */
  AUTHN_MALFORMED,     /* not a v4.public token, bad footer or kid */
  AUTHN_UNKNOWN_KEY,   /* kid not in the key set (even after a fetch) */
  AUTHN_BAD_SIGNATURE, /* signature does not verify */
  AUTHN_BAD_CLAIMS,    /* payload not valid claims, wrong iss, or
                          sub/tid/jti/exp missing */
  AUTHN_EXPIRED,
  AUTHN_NOT_YET_VALID, /* nbf in the future, or iat in the future */
  AUTHN_REVOKED,       /* jti revoked, or the user's tokens revoked */
  AUTHN_TENANT_SUSPENDED,
  AUTHN_UNAVAILABLE, /* could not decide (fail_closed, no keys yet) */
};

typedef struct authn_config {
  const char *issuer;      /* required "iss"; NULL or "": any (copied) */
  int64_t leeway_ms;       /* clock skew allowed; < 0 -> 30000 */
  size_t cache_entries;    /* verified-token cache; 0 -> 8192; rounded
                              up to a multiple of 4; max 1 << 22 */
  int64_t recheck_ms;      /* revocation/tenant re-read; <= 0 -> 500 */
  cache *redis;            /* NULL: no Redis lookups (borrowed) */
  bool fail_closed;        /* Redis failure refuses (AUTHN_UNAVAILABLE) */
  rpc_client *keys_client; /* NULL: keys only via authn_set_keys
                              (borrowed; must outlive the authn) */
  int64_t keys_refresh_ms; /* periodic fetch; <= 0 -> 60000 */
  int64_t unknown_kid_interval_ms; /* min gap between fetches triggered by
                                      unknown kids; <= 0 -> 1000 */
  uint32_t keys_deadline_ms;       /* Keys RPC deadline; 0 -> 2000 */
  int64_t (*now_ms)(void);         /* wall clock for the time claims (tests);
                                      NULL -> time_now_ms */
} authn_config;

#define AUTHN_CONFIG_INIT                                                      \
  { NULL, -1, 0, 0, NULL, false, NULL, 0, 0, 0, NULL }

/* Creates a verifier. cfg is copied (issuer too); redis and keys_client
 * are borrowed. With a keys_client, fetches the keys once (a failure is
 * not an error: tokens are refused with AUTHN_UNAVAILABLE until a fetch
 * succeeds) and starts the refresh thread. Errors: ERR_INVAL (bad
 * config), ERR_NOMEM, ERR_INTERNAL (libsodium or thread). *out is the
 * caller's (authn_free). */
int authn_new(const authn_config *cfg, authn **out) WARN_UNUSED;

/* Stops the refresh thread and frees a. NULL-safe. */
void authn_free(authn *a);

/* Replaces the key set with keys[0..n) (copied; n <= AUTHN_MAX_KEYS,
 * ERR_TOOBIG past that; ERR_INVAL for NULL keys with n > 0). Cached
 * tokens signed by a key no longer in the set are verified again. */
int authn_set_keys(authn *a, const authn_key *keys, size_t n) WARN_UNUSED;

/* Fetches the key set from keys_client now and installs it. Errors:
 * ERR_INVAL (no keys_client), ERR_UNAVAILABLE (RPC failed or answered
 * not OK), ERR_PROTO (undecodable answer, or a key that is not a valid
 * Ed25519 key or whose kid does not match it - the whole answer is then
 * refused), ERR_NOMEM. */
int authn_refresh_keys(authn *a) WARN_UNUSED;

/* Number of keys in the set now. */
size_t authn_key_count(authn *a);

/* Verifies token[0..len). On ERR_OK *claims holds its claims and *why
 * AUTHN_OK. Errors: ERR_INVAL (refused: *why says why), ERR_UNAVAILABLE
 * (no key set yet, or Redis failed with fail_closed: *why is
 * AUTHN_UNAVAILABLE), ERR_NOMEM. claims and why may be NULL. The token
 * is the caller's; nothing of it is logged. */
int authn_verify(authn *a, const char *token, size_t len, paseto_claims *claims,
                 enum authn_result *why) WARN_UNUSED;

/* authn_verify for n tokens at once (n <= AUTHN_BATCH_MAX), for a caller
 * that re-verifies many live tokens (realtime's recheck): the same checks
 * and results - rcs[i] and why[i] are what authn_verify would return and
 * set for tokens[i][0..lens[i]) - but the revocation/tenant lookups of
 * every token due for one go to Redis as ONE MGET (three keys a token)
 * instead of one MGET each. Returns ERR_OK when rcs/why are filled;
 * ERR_INVAL (bad arguments), ERR_NOMEM (nothing filled). */
#define AUTHN_BATCH_MAX 1024
int authn_verify_batch(authn *a, const char *const *tokens, const size_t *lens,
                       size_t n, int *rcs, enum authn_result *why) WARN_UNUSED;

/* The offline part of authn_verify, for a caller that must not block
 * (the gateway's HTTP I/O threads, deciding before a body is read):
 * shape, a kid among the keys held now (never a Keys fetch), signature
 * (or the cache), claims and time - no Redis, no RPC. A token it accepts
 * is cached, so the authn_verify that must still follow (revocation,
 * tenant status) costs no second signature check. A kid not in the held
 * set is refused (AUTHN_UNKNOWN_KEY): docs/tokens.md's rotation has every
 * verifier know a key before anyone signs with it.
 * Returns ERR_OK (valid offline; NOT checked for revocation), ERR_INVAL
 * (refused: *why), ERR_UNAVAILABLE (no key set yet: cannot tell),
 * ERR_NOMEM. why may be NULL. */
int authn_verify_offline(authn *a, const char *token, size_t len,
                         enum authn_result *why) WARN_UNUSED;

/* The setting AUTHN_REVOCATION_FAIL: "open" (or NULL/"": the default)
 * sets *fail_closed false, "closed" true (case-insensitive).
 * Errors: ERR_INVAL for anything else (*fail_closed untouched). */
int authn_fail_mode_parse(const char *s, bool *fail_closed) WARN_UNUSED;

/* A short static description ("token expired"); never NULL. */
const char *authn_result_str(enum authn_result r);

/* The RPC status for a result: UNAUTHENTICATED for invalid tokens,
 * PERMISSION_DENIED for a suspended tenant, UNAVAILABLE, OK. */
int authn_result_code(enum authn_result r);

/* Applies a revocation learnt from the bus to cached tokens at once:
 * the token with this jti / every token of user_id issued (iat) before
 * revoked_at_s (unix seconds). Tokens not cached yet are checked in Redis
 * when first seen. NULL/empty ids are ignored. */
void authn_revoke_jti(authn *a, const char *jti);
void authn_revoke_user(authn *a, const char *user_id, int64_t revoked_at_s);

/* A tenant changed (suspended, resumed): cached tokens of tenant_id re-read
 * its status on their next use. */
void authn_tenant_changed(authn *a, const char *tenant_id);

/* Feeds one bus event: topic "auth.revoked" (payload auth.v1.Revoked) or
 * "tenants.changed" (the envelope's tenant_id). event/len is a serialised
 * rpc.v1.Event. Other topics are ignored (ERR_OK). Errors: ERR_PROTO
 * (undecodable), ERR_INVAL (NULL). */
int authn_handle_event(authn *a, const char *topic, const void *event,
                       size_t len) WARN_UNUSED;

/* The same for an event already decoded (a bus callback's). */
int authn_apply_event(authn *a, const Rpc__V1__Event *ev) WARN_UNUSED;

/* Subscribes a to "auth.revoked" and "tenants.changed" on the bus
 * publishers at address (comma-separated endpoints as for the RPC client,
 * e.g. auth's and tenants' BUS_LISTEN addresses) and starts receiving:
 * revocations then apply within milliseconds instead of at the next
 * recheck. Lost events are not backfilled (Redis and the recheck cover
 * them). *out is the caller's: bus_subscriber_free it BEFORE authn_free.
 * Errors from bus_subscriber_new/start (ERR_INVAL for a bad address). */
int authn_subscribe(authn *a, const char *address,
                    bus_subscriber **out) WARN_UNUSED;

/* Every cached token's revocation/tenant state read until now is due
 * again: the next verification of each reads Redis, whatever recheck_ms
 * says (a lookup in flight counts as read before). For a caller that
 * learnt that the records changed (revlog.h's counter moved) without
 * knowing which. */
void authn_recheck_all(authn *a);

/* Drops every cached token (tests, benchmarks). */
void authn_cache_clear(authn *a);

typedef struct authn_stats {
  uint64_t hits;         /* verified from the cache */
  uint64_t misses;       /* needed a signature verification */
  uint64_t refused;      /* ERR_INVAL answers */
  uint64_t evictions;    /* valid entries replaced to make room */
  uint64_t redis_checks; /* MGETs sent */
  uint64_t redis_errors; /* MGETs that failed */
  uint64_t key_fetches;  /* Keys RPCs attempted */
  uint64_t key_fetch_errors;
} authn_stats;

void authn_get_stats(authn *a, authn_stats *out);

#endif
