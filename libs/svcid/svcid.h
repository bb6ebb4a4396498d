/*
 * svcid.h - service identity: which of our services is calling an RPC,
 * proven offline (docs/adr/0008-service-identity.md).
 *
 * Being on the cluster network is not a credential. Every service holds an
 * Ed25519 key of its own (SERVICE_KEY_FILE, mounted from that service's
 * own Secret) and the trust bundle (SERVICE_TRUST_FILE): the public keys
 * of every service, one "<service> <key>" per line, which is public. A
 * caller mints a short-lived PASETO v4.public token
 *
 *   {"iss":"tenants","sub":"tenants","aud":"auth",
 *    "iat":…,"nbf":…,"exp":…}          footer {"kid":"k4.pid.…"}
 *
 * (the shape of a SPIFFE JWT-SVID) and sends it in every request envelope
 * (rpc.v1.Request.service_token). The callee verifies it without a round
 * trip: the kid names a bundle key, the key belongs to exactly the
 * service named by iss and sub (a key speaks for one service only), aud is
 * the callee itself (a token given to one service cannot be replayed to
 * another by a compromised callee), the lifetime is at most
 * SVCID_MAX_TTL_MS, and the times hold with SVCID_LEEWAY_MS of skew. The
 * tokens are signed with the implicit assertion SVCID_ASSERTION, so a
 * service token can never pass as a user's access token or the reverse,
 * whatever keys an operator puts where.
 *
 * Cost: the signer keeps one token per audience and mints a new one when
 * half of its life has passed (one Ed25519 signature per callee every few
 * minutes); the verifier caches verified tokens by BLAKE2b-256 of the
 * token (never the token itself), so a call costs one hash and a compare
 * (docs/PERFORMANCE.md, "Service identity").
 *
 * Threads: every function on a signer or verifier is thread-safe; _free
 * must not race the others.
 */
#ifndef LIBS_SVCID_SVCID_H
#define LIBS_SVCID_SVCID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/paseto/paseto.h"

#define SVCID_NAME_MAX 32   /* [a-z][a-z0-9-]*, bytes */
#define SVCID_TOKEN_MAX 512 /* bytes of a service token */
#define SVCID_BUNDLE_MAX 64 /* keys in a trust bundle */
#define SVCID_BUNDLE_FILE_MAX 16384
#define SVCID_TTL_MS (5 * 60 * 1000)      /* minted lifetime */
#define SVCID_MAX_TTL_MS (15 * 60 * 1000) /* longest accepted */
#define SVCID_LEEWAY_MS (30 * 1000)
#define SVCID_ASSERTION "restaurant-platform service identity v1"

/* True when s is a service name: 1..SVCID_NAME_MAX bytes of [a-z0-9-],
 * starting with a letter. "*" is not a name (access rules use it). */
bool svcid_name_ok(const char *s);

/* ---- trust bundle ----------------------------------------------------- */

typedef struct svcid_bundle svcid_bundle;

/* Parses a bundle: lines "<service> <key>", key a PASERK k4.public or 64
 * hex digits; blank lines and lines starting with '#' are skipped; a
 * service may have several keys (rotation). Returns ERR_INVAL (with the
 * 1-based line number in *bad_line, never the text), ERR_TOOBIG (over
 * SVCID_BUNDLE_MAX keys), ERR_NOMEM. *out is the caller's. */
int svcid_bundle_parse(const char *text, size_t len, svcid_bundle **out,
                       int *bad_line) WARN_UNUSED;

/* svcid_bundle_parse on a file's contents; ERR_IO when it cannot be read,
 * ERR_TOOBIG over SVCID_BUNDLE_FILE_MAX bytes. */
int svcid_bundle_load(const char *path, svcid_bundle **out,
                      int *bad_line) WARN_UNUSED;

/* Number of keys, and the service a key id belongs to (NULL if none). */
size_t svcid_bundle_count(const svcid_bundle *b);
const char *svcid_bundle_service_of(const svcid_bundle *b, const char *kid);

void svcid_bundle_free(svcid_bundle *b);

/* ---- signer ----------------------------------------------------------- */

typedef struct svcid_signer svcid_signer;

/* A signer for service name with secret key sk (copied; wipe yours).
 * ERR_INVAL (bad name), ERR_NOMEM. */
int svcid_signer_new(const char *name, const paseto_secret_key *sk,
                     svcid_signer **out) WARN_UNUSED;

/* Reads the secret key from path: 128 hex digits (tools/token keygen's
 * secret_key) or a PASERK k4.secret, surrounding whitespace ignored; the
 * buffer is wiped. ERR_IO, ERR_INVAL, ERR_NOMEM. */
int svcid_signer_load(const char *name, const char *path,
                      svcid_signer **out) WARN_UNUSED;

/* The signer's service name (static for its life). */
const char *svcid_signer_name(const svcid_signer *s);

/* The key id (k4.pid) of the signer's public key. */
const char *svcid_signer_kid(const svcid_signer *s);

/* Writes a token naming this service for audience (a service name) into
 * out (NUL-terminated, capacity cap >= SVCID_TOKEN_MAX). A cached token
 * is reused until half its life has passed. ERR_INVAL (bad audience),
 * ERR_TOOBIG (cap), ERR_NOMEM, ERR_INTERNAL. */
int svcid_signer_token(svcid_signer *s, const char *audience, char *out,
                       size_t cap) WARN_UNUSED;

/* The same, minting at now_ms with lifetime ttl_ms and no cache: for
 * tests and tools that need expired, future or over-long tokens. */
int svcid_signer_mint(svcid_signer *s, const char *audience, int64_t now_ms,
                      int64_t ttl_ms, char *out, size_t cap) WARN_UNUSED;

/* The service a method belongs to: the first component of its package,
 * "orders.v1.Orders/GetOrder" -> "orders" (our packages are named after
 * their service). ERR_INVAL when that is not a service name. */
int svcid_method_service(const char *method,
                         char out[SVCID_NAME_MAX + 1]) WARN_UNUSED;

/* An rpc_client_options.credential: arg is a svcid_signer; mints (or
 * reuses) the token for the method's service. */
int svcid_credential(void *arg, const char *method, char *buf, size_t cap);

void svcid_signer_free(svcid_signer *s);

/* ---- verifier --------------------------------------------------------- */

typedef struct svcid_verifier svcid_verifier;

/* A verifier for tokens addressed to self (this service's name), trusting
 * bundle (taken: freed with the verifier, also on failure). ERR_INVAL,
 * ERR_NOMEM. */
int svcid_verifier_new(const char *self, svcid_bundle *bundle,
                       svcid_verifier **out) WARN_UNUSED;

/* Verifies token[0..len): ERR_OK with the calling service's name copied
 * into caller; ERR_INVAL with the reason in *why (static: "missing service
 * token", "unknown service key", "bad signature", "token for another
 * service", "token expired", ...); ERR_NOMEM. Never logs the token. */
int svcid_verify(svcid_verifier *v, const char *token, size_t len,
                 char caller[SVCID_NAME_MAX + 1], const char **why) WARN_UNUSED;

/* svcid_verify at a given time, bypassing the cache (tests). */
int svcid_verify_at(svcid_verifier *v, const char *token, size_t len,
                    int64_t now_ms, char caller[SVCID_NAME_MAX + 1],
                    const char **why) WARN_UNUSED;

void svcid_verifier_free(svcid_verifier *v);

#endif
