/*
 * keys.h - the auth service's signing keys: loaded from configuration,
 * one signs, all verify.
 *
 * Configuration (exactly one of the two):
 *   AUTH_SIGNING_KEYS       secret: a comma-separated list of keys
 *   AUTH_SIGNING_KEYS_FILE  a file with one key per line ('#' comments
 *                           and blank lines ignored)
 * Each key is either a secret key in hex - 128 hex digits (libsodium's
 * 64-byte seed || public key, as `tools/token keygen` prints it as
 * secret_key=) or 64 hex digits (the 32-byte seed) - or a PASERK
 * "k4.public.<b64url>" public key, which only verifies. The FIRST entry
 * must be a secret key: it signs every new token ("active"); all others
 * are "verify-only". Rotation: put the new key first and keep the old one
 * after it (as a secret or as its k4.public) for one access-token
 * lifetime, then drop it (docs/tokens.md).
 *
 * Every secret is wiped (sodium_memzero) when the set is freed and never
 * leaves this module except as a signature.
 */
#ifndef AUTH_KEYS_H
#define AUTH_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"

#define AUTH_KEYS_MAX 16
#define AUTH_KEYS_FILE_MAX 16384 /* bytes */

typedef struct auth_keys auth_keys;

/* Parses a list (see above; separators: commas, whitespace, newlines;
 * '#' starts a comment to the end of the line). Errors: ERR_INVAL (no
 * key, a malformed or mismatched key, the first entry not a secret key,
 * the same key twice; *bad_index gets the 0-based index of the culprit,
 * -1 when none), ERR_TOOBIG (more than AUTH_KEYS_MAX), ERR_NOMEM. The
 * message never contains key material. *out is the caller's. */
int auth_keys_parse(const char *list, auth_keys **out,
                    int *bad_index) WARN_UNUSED;

/* Reads path (at most AUTH_KEYS_FILE_MAX bytes) and parses it. Errors as
 * auth_keys_parse, plus ERR_IO (cannot read). The buffer is wiped. */
int auth_keys_load_file(const char *path, auth_keys **out,
                        int *bad_index) WARN_UNUSED;

/* Wipes and frees. NULL-safe. */
void auth_keys_free(auth_keys *k);

size_t auth_keys_count(const auth_keys *k);

/* Key i (0 = the signing key): its k4.pid, public key and status. */
const char *auth_keys_kid(const auth_keys *k, size_t i);
const paseto_public_key *auth_keys_public(const auth_keys *k, size_t i);
bool auth_keys_is_active(const auth_keys *k, size_t i);

/* A 32-byte key for purpose `context` (e.g. "auth.idem.v1"), derived from
 * the active signing key: BLAKE2b-256 keyed with its secret seed over the
 * context. One-way (the output reveals nothing of the signing key), the
 * same in every replica with the same configuration, and it changes when
 * the active key rotates. ERR_INVAL without an active secret key. */
int auth_keys_derive(const auth_keys *k, const char *context,
                     uint8_t out[32]) WARN_UNUSED;

/* Signs claims with the active key, footer {"kid":"<its pid>"}, into out
 * (capacity cap, NUL-terminated; *len may be NULL). Errors: ERR_INVAL
 * (claims not serialisable), ERR_TOOBIG, ERR_NOMEM. */
int auth_keys_sign(const auth_keys *k, const paseto_claims *claims, char *out,
                   size_t cap, size_t *len) WARN_UNUSED;

#endif
