/*
 * handlers.h - the auth service's RPC handlers ("auth.v1.Auth/<Method>",
 * proto/auth/v1/auth.proto), as a library so tests link them directly.
 *
 * The context holds everything a handler needs; main.c builds it from
 * configuration (see README.md) and registers the handlers on the
 * service's RPC server. Handlers verify the caller's forwarded token
 * themselves with the in-process verifier (zero trust: a call is never
 * trusted because it came through the gateway), answer with gRPC codes
 * and field violations, and never put a password, hash, secret key or
 * refresh token into a reply message or a log line.
 */
#ifndef AUTH_HANDLERS_H
#define AUTH_HANDLERS_H

#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/cache/cache.h"
#include "libs/rpc/rpc.h"
#include "services/auth/keys.h"
#include "services/auth/loginlock.h"
#include "services/auth/pwpool.h"
#include "services/auth/revoker.h"
#include "services/auth/store.h"

#define AUTH_MAX_REQUEST_BYTES (16u * 1024u)
#define AUTH_LIST_DEFAULT 20
#define AUTH_LIST_MAX 100
#define AUTH_REFRESH_TOKEN_LEN 43 /* base64url of 32 bytes, no padding */

typedef struct auth_ctx {
  /* Borrowed; must outlive the registered handlers. */
  store *store;
  const auth_keys *keys;
  pwpool *pw;
  authn *verifier; /* configured with the keys above */
  cache *redis;    /* tenant status; may be NULL */
  revoker *revoke;
  loginlock *login_lock; /* per-account slowdown; NULL: none */
  /* Settings. */
  const char *issuer;        /* "iss" of issued tokens */
  int64_t access_ttl_ms;     /* access-token lifetime */
  int64_t refresh_ttl_ms;    /* refresh-token lifetime */
  int64_t reuse_interval_ms; /* spent refresh token accepted again */
  /* Key of idempotent creations' request hashes (idem.h), derived from the
   * active signing key (auth_keys_derive). */
  uint8_t idem_key[32];
} auth_ctx;

/* Registers every auth.v1.Auth method on srv with ctx (borrowed).
 * Errors from rpc_server_register. */
int auth_handlers_register(rpc_server *srv, auth_ctx *ctx) WARN_UNUSED;

/* Encodes a fresh refresh token (32 random bytes) as base64url into out
 * and its SHA-256 into hash. Exposed for tests. */
void auth_refresh_token_new(char out[AUTH_REFRESH_TOKEN_LEN + 1],
                            uint8_t hash[STORE_HASHBYTES]);

/* Decodes a presented refresh token and hashes it. ERR_INVAL for anything
 * that is not exactly the base64url of 32 bytes. */
int auth_refresh_token_hash(const char *token,
                            uint8_t hash[STORE_HASHBYTES]) WARN_UNUSED;

#endif
